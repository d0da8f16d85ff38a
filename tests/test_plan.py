from __future__ import annotations

from pathlib import Path

import pytest

from artlab_kohya.build.plan import PlanError, make_plan, plan_json
from artlab_kohya.dataset.images import folder_repeats
from artlab_kohya.spec import load_spec

SPEC = """\
model:
  source: base.safetensors
  family: sd15
dataset:
  resolution: 512
  batch_size: {batch}
  buckets:
    enabled: {buckets}
  subsets:
    - path: img/10_sks
network:
  type: lora
  dim: 4
  alpha: 1
training:
  epochs: {epochs}
"""


def spec_for(write_spec, batch=1, buckets="false", epochs=10, extra=""):
    return write_spec(SPEC.format(batch=batch, buckets=buckets, epochs=epochs) + extra)


def test_folder_name_gives_repeats_and_class_tokens():
    assert folder_repeats(Path("/x/10_sks woman")) == (10, "sks woman")
    assert folder_repeats(Path("/x/3_a_b")) == (3, "a_b")
    assert folder_repeats(Path("/x/sks")) is None
    assert folder_repeats(Path("/x/007_x")) == (7, "x") and folder_repeats(Path("/x/10_")) == (10, "")
    assert folder_repeats(Path("/x/x_10")) is None and folder_repeats(Path("/x/10sks")) is None


def test_guide_formula_without_buckets(write_spec, images, tmp_path):
    """images x repeats x epochs / batch size: 30 x 10 x 10 / 6 = 500."""
    images(tmp_path / "img/10_sks", [(512, 512)] * 30)
    plan = make_plan(load_spec(spec_for(write_spec, batch=6)))
    assert plan.subsets[0].images == 30 and plan.subsets[0].repeats == 10
    assert plan.subsets[0].repeats_from == "folder" and plan.subsets[0].class_tokens == "sks"
    assert plan.train_images_x_repeats == 300
    assert plan.batches_per_epoch == 50
    assert plan.total_steps == 500
    assert plan.saves == tuple(f"lora-{e:06d}.safetensors" for e in range(1, 10)) + ("lora.safetensors",)
    assert [w.message for w in plan.warnings] == [
        "500 total steps; the guide aims above ~1500 (images x repeats x epochs / batch size)"
    ]


def test_buckets_round_up_per_bucket(write_spec, images, tmp_path):
    """Batches never mix buckets: 3 portrait + 3 landscape images at batch 4 is 2 x ceil(30/4) = 16."""
    images(tmp_path / "img/10_sks", [(512, 768)] * 3 + [(768, 512)] * 3)
    plan = make_plan(load_spec(spec_for(write_spec, batch=4, buckets="true", epochs=1)))
    assert plan.buckets == {(384, 640): 30, (640, 384): 30}  # aspect 0.67: 384x640 (0.6) beats 448x576 (0.78)
    assert plan.batches_per_epoch == 16
    assert plan.total_steps == 16


def test_gradient_accumulation_and_processes(write_spec, images, tmp_path):
    images(tmp_path / "img/10_sks", [(512, 512)] * 25)
    extra = "launch:\n  num_processes: 2\n  gpu_ids: [0, 1]\n"
    path = spec_for(write_spec, batch=8, epochs=3, extra=extra.replace("launch", "launch"))
    path.write_text(
        path.read_text().replace("training:\n  epochs: 3\n", "training:\n  epochs: 3\n  gradient_accumulation: 2\n")
    )
    plan = make_plan(load_spec(path))
    # 250 images x repeats / 8 = 32 batches; 2 processes -> 16 each; accumulation 2 -> 8 steps/epoch
    assert plan.batches_per_epoch == 16
    assert plan.steps_per_epoch == 8
    assert plan.total_steps == 24


def test_max_steps_derives_epochs(write_spec, images, tmp_path):
    images(tmp_path / "img/10_sks", [(512, 512)] * 10)
    path = spec_for(write_spec, batch=2).read_text().replace("  epochs: 10\n", "  epochs: null\n  max_steps: 120\n")
    plan = make_plan(load_spec(write_spec(path)))
    assert (plan.steps_per_epoch, plan.epochs, plan.total_steps) == (50, 3, 120)


def test_auto_repeats_reaches_the_target(write_spec, images, tmp_path):
    images(tmp_path / "img/sks", [(512, 512)] * 30)
    path = spec_for(write_spec, batch=4).read_text().replace("img/10_sks", "img/sks\n      repeats: auto")
    plan = make_plan(load_spec(write_spec(path)))
    # smallest r with 30 * r * 10 / 4 >= 1500 is r = 20
    assert plan.subsets[0].repeats == 20 and plan.subsets[0].repeats_from == "auto"
    assert plan.total_steps == 1500
    assert plan.auto_repeats.startswith("repeats auto = 20")
    assert plan.warnings == []


def test_regularization_images_fill_to_the_train_count(write_spec, images, tmp_path):
    images(tmp_path / "img/10_sks", [(512, 512)] * 12)
    images(tmp_path / "img/reg", [(512, 512)] * 5, caption=None)
    extra = "\n"
    path = spec_for(write_spec, batch=2, epochs=1, extra=extra).read_text()
    path = path.replace(
        "    - path: img/10_sks\n",
        "    - path: img/10_sks\n    - path: img/reg\n      repeats: 1\n      regularization: true\n",
    )
    plan = make_plan(load_spec(write_spec(path)))
    assert plan.reg_images_x_repeats == 5
    assert plan.batches_per_epoch == 120  # 120 train + 120 placed reg images, batch 2
    assert plan_json(plan)["total_steps"] == 120


def test_save_last_n_epochs_and_step_saves(write_spec, images, tmp_path):
    images(tmp_path / "img/10_sks", [(512, 512)] * 10)
    extra = "  save_every_n_epochs: 2\n  save_last_n_epochs: 1\n  save_every_n_steps: 150\noutput:\n  name: x\n"
    plan = make_plan(load_spec(spec_for(write_spec, batch=2, epochs=6, extra="").parent / "spec.yaml"))
    path = spec_for(write_spec, batch=2, epochs=6)
    path.write_text(path.read_text() + extra)
    plan = make_plan(load_spec(path))
    # 50 steps per epoch: steps 150 and 300 save by step; epochs 2 and 4 by epoch; 6 is the last
    assert plan.saves == (
        "x-000002.safetensors",
        "x-step00000150.safetensors",
        "x-000004.safetensors",
        "x-step00000300.safetensors",
        "x.safetensors",
    )
    assert plan.removed == ("x-000002.safetensors",)


def test_dataset_problems_are_located(write_spec, images, tmp_path):
    path = (
        spec_for(write_spec)
        .read_text()
        .replace(
            "    - path: img/10_sks\n",
            "    - path: img/10_sks\n    - path: img/missing\n      repeats: 2\n    - path: img/plain\n",
        )
    )
    (tmp_path / "img/10_sks").mkdir(parents=True)
    (tmp_path / "img/10_sks/readme.txt").write_text("no images here")
    images(tmp_path / "img/plain", [(512, 512)])
    (tmp_path / "img/plain/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(PlanError) as info:
        make_plan(load_spec(write_spec(path)))
    messages = [str(i) for i in info.value.issues]
    assert messages[0].startswith("spec.yaml:10: dataset.subsets[0].path: no images in ")
    assert "No data found" in messages[0]
    assert messages[1].startswith("spec.yaml:11: dataset.subsets[1].path: ") and messages[1].endswith("does not exist")
    assert messages[2].startswith("spec.yaml:13: dataset.subsets[2].path: 1 image(s) cannot be read: ")
    assert messages[3] == (
        "spec.yaml:13: dataset.subsets[2].repeats: the folder 'plain' is not named N_name (e.g. 10_plain); "
        "rename it or give repeats as a number"
    )


def test_lora_size_is_predicted(write_spec, images, tmp_path):
    images(tmp_path / "img/10_sks", [(512, 512)] * 10)
    plan = make_plan(load_spec(spec_for(write_spec)))
    assert plan.family == "sd15"
    # measured: the dim-4 LoRA of this random-init SD1.5 is 9.5 MB in fp32 (shared/kohya/README.md);
    # save_precision fp16 halves it
    assert plan.lora_bytes is not None and 4.5e6 < plan.lora_bytes < 5.0e6


def test_machines_multiply_the_processes_that_share_an_epoch(write_spec, images, tmp_path):
    """sd-scripts divides an epoch's batches by accelerator.num_processes, the processes of every machine:
    2 per machine x 2 machines behave as 4 processes on one."""
    images(tmp_path / "img/10_sks", [(512, 512)] * 25)
    machines = "launch:\n  num_processes: 2\n  num_machines: 2\n  main_process_ip: 10.0.0.1\n"
    plan = make_plan(load_spec(spec_for(write_spec, batch=2, epochs=3, extra=machines)))
    four = make_plan(load_spec(spec_for(write_spec, batch=2, epochs=3, extra="launch:\n  num_processes: 4\n")))
    # 250 images x repeats / batch 2 = 125 batches; 4 processes -> 32 each (the last round repeats)
    assert (plan.batches_per_epoch, plan.steps_per_epoch, plan.total_steps) == (32, 32, 96)
    assert (four.batches_per_epoch, four.total_steps) == (32, 96)
    assert (plan.processes, plan.machines, plan.effective_batch) == (2, 2, 8)
    data = plan_json(plan)
    assert (data["processes"], data["machines"], data["effective_batch"]) == (2, 2, 8)


def test_a_learning_rate_set_for_another_effective_batch_is_warned(write_spec, images, tmp_path):
    images(tmp_path / "img/10_sks", [(512, 512)] * 20)
    one = make_plan(load_spec(spec_for(write_spec, batch=2)))
    assert not [w for w in one.warnings if "effective batch" in w.message]
    four = make_plan(load_spec(spec_for(write_spec, batch=2, extra="launch:\n  num_processes: 4\n")))
    (warning,) = [w for w in four.warnings if "effective batch" in w.message]
    assert warning.path == ("launch", "num_processes")
    assert "effective batch 8 (batch 2 x 4 process(es) x 1 machine(s) x accumulation 1) is 4x the 2" in warning.message
    assert "linear 0.0004, square root 0.0002" in warning.message  # learning_rate 1e-4 (the default)
    said = "optimizer:\n  lr_reference_batch: 8\nlaunch:\n  num_processes: 4\n"
    assert not [
        w for w in make_plan(load_spec(spec_for(write_spec, batch=2, extra=said))).warnings if "effective" in w.message
    ]
    other = "optimizer:\n  lr_reference_batch: 16\n  unet_lr: 2.0e-4\nlaunch:\n  num_processes: 4\n"
    (warning,) = [
        w for w in make_plan(load_spec(spec_for(write_spec, batch=2, extra=other))).warnings if "effective" in w.message
    ]
    assert warning.path == ("optimizer", "lr_reference_batch") and "is 0.5x the 16" in warning.message
    assert "linear 0.0001, square root 0.000141" in warning.message
    adaptive = "optimizer:\n  type: Prodigy\n  learning_rate: 1.0\nlaunch:\n  num_processes: 4\n"
    assert not [
        w
        for w in make_plan(load_spec(spec_for(write_spec, batch=2, extra=adaptive))).warnings
        if "effective" in w.message
    ]
