from __future__ import annotations

from pathlib import Path

import pytest

from artlab_kohya.spec import SpecError, load_spec
from artlab_kohya.spec.model import DyLoraNetwork, HubSource, LoraNetwork
from artlab_kohya.spec.yamlpos import format_path, parse_path

MINIMAL = """\
model:
  source: models/base.safetensors
  family: sd15
dataset:
  subsets:
    - path: img/10_sks
network:
  type: lora
"""


def errors_of(path: Path, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides)
    return [str(i) for i in info.value.issues]


def test_minimal_spec_fills_defaults_and_resolves_paths(write_spec):
    path = write_spec(MINIMAL)
    loaded = load_spec(path)
    spec = loaded.spec
    assert spec.model.source.type == "local"
    assert spec.model.source.path == path.parent / "models/base.safetensors"
    assert spec.dataset.subsets[0].path == path.parent / "img/10_sks"
    assert isinstance(spec.network, LoraNetwork)
    assert (spec.network.dim, spec.network.alpha) == (128, 64)  # the guide's beginner rank
    assert spec.training.epochs == 10
    assert spec.optimizer.learning_rate == 1e-4


def test_every_error_at_once_with_its_line(write_spec):
    path = write_spec(
        """\
        model:
          source: models/base.safetensors
          clip_skip: 0
        dataset:
          batch_size: 0
          subsets:
            - path: img/10_sks
              repeats: lots
              netwrk: 3
        network:
          type: lorra
        optimizer:
          type: AdamW8bt
        training:
          mixed_precision: fp32
          learning_rate: 3
        """
    )
    assert errors_of(path) == [
        "spec.yaml:3: model.clip_skip: must be at least 1 (got 0)",
        "spec.yaml:5: dataset.batch_size: must be at least 1 (got 0)",
        "spec.yaml:8: dataset.subsets[0].repeats: must be a whole number or one of 'folder', 'auto' (got 'lots')",
        "spec.yaml:9: dataset.subsets[0].netwrk: unknown key 'netwrk' (known here: path, repeats, class_tokens, "
        "caption_extension, regularization, shuffle_caption, keep_tokens, flip_aug, color_aug, random_crop, "
        "caption_dropout_rate, caption_tag_dropout_rate, caption_prefix, caption_suffix)",
        "spec.yaml:11: network.type: must be one of lora, dylora, locon, loha, lokr (got 'lorra'); did you mean 'lora'?",
        "spec.yaml:13: optimizer.type: unknown optimizer 'AdamW8bt'; did you mean 'AdamW8bit'? (sd-scripts knows "
        "AdamW, AdamW8bit, PagedAdamW, PagedAdamW8bit, PagedAdamW32bit, Lion, Lion8bit, PagedLion8bit, SGDNesterov, "
        "SGDNesterov8bit, AdEMAMix8bit, PagedAdEMAMix8bit, DAdaptation, DAdaptAdamPreprint, DAdaptAdaGrad, "
        "DAdaptAdam, DAdaptAdan, DAdaptAdanIP, DAdaptLion, DAdaptSGD, Prodigy, Adafactor, RAdamScheduleFree, "
        "AdamWScheduleFree, SGDScheduleFree, or give a full class path such as torch.optim.RMSprop)",
        "spec.yaml:15: training.mixed_precision: must be one of 'no', 'fp16', 'bf16' (got 'fp32'); "
        "did you mean 'fp16'?",
        "spec.yaml:16: training.learning_rate: unknown key 'learning_rate' here; it belongs at optimizer.learning_rate",
    ]


def test_did_you_mean_for_a_near_miss(write_spec):
    path = write_spec(MINIMAL.replace("type: lora", "type: lora\n  dimm: 8"))
    assert errors_of(path) == ["spec.yaml:9: network.dimm: unknown key 'dimm'; did you mean 'dim'?"]


def test_kohya_names_point_to_their_spec_field(write_spec):
    path = write_spec(MINIMAL.replace("type: lora", "type: lora\n  network_dim: 8"))
    assert errors_of(path) == [
        "spec.yaml:9: network.network_dim: unknown key 'network_dim' here; it belongs at network.dim"
    ]


def test_unsupported_kohya_option_is_explained(write_spec):
    path = write_spec(MINIMAL + "training:\n  stop_text_encoder_training: 5\n")
    (message,) = errors_of(path)
    assert message.startswith("spec.yaml:10: training.stop_text_encoder_training: unknown key")
    assert "network.train: unet" in message


def test_missing_sections_are_required(write_spec):
    path = write_spec("network:\n  type: lora\n")
    assert errors_of(path) == ["spec.yaml:1: model: is required", "spec.yaml:1: dataset: is required"]


def test_yaml12_scalars_no_and_exponent_floats(write_spec):
    path = write_spec(
        MINIMAL + "optimizer:\n  learning_rate: 1e-4\n  unet_lr: 2E-4\ntraining:\n  mixed_precision: no\n"
    )
    spec = load_spec(path).spec
    assert spec.optimizer.learning_rate == 1e-4
    assert spec.optimizer.unet_lr == 2e-4
    assert spec.training.mixed_precision == "no"


def test_strict_types_do_not_coerce(write_spec):
    path = write_spec(MINIMAL + "training:\n  epochs: '10'\n  gradient_checkpointing: 1\n")
    assert errors_of(path) == [
        "spec.yaml:10: training.epochs: must be a whole number (got '10')",
        "spec.yaml:11: training.gradient_checkpointing: must be true or false (got 1)",
    ]


def test_duplicate_key_and_bad_yaml_are_located(write_spec):
    assert errors_of(write_spec(MINIMAL + "network:\n  type: lora\n")) == [
        "spec.yaml:9: key 'network' appears twice in the same table"
    ]
    (message,) = errors_of(write_spec("model: [1, 2\n"))
    assert message.startswith("spec.yaml:2: not valid YAML")


def test_empty_or_scalar_spec(write_spec):
    assert errors_of(write_spec("")) == [
        "spec.yaml:1: model: is required",
        "spec.yaml:1: dataset: is required",
        "spec.yaml:1: network: is required",
    ]
    assert errors_of(write_spec("hello\n")) == ["spec.yaml: a spec is a YAML mapping (model:, dataset:, network: ...)"]


def test_missing_file_is_one_line(tmp_path):
    (message,) = errors_of(tmp_path / "nope.yaml")
    assert "cannot read the spec" in message


def test_overrides_are_validated_and_located(write_spec):
    path = write_spec(MINIMAL)
    loaded = load_spec(path, ("network.dim=32", "dataset.subsets[0].repeats=5", "optimizer.learning_rate=1e-3"))
    assert loaded.spec.network.dim == 32
    assert loaded.spec.dataset.subsets[0].repeats == 5
    assert loaded.spec.optimizer.learning_rate == 1e-3
    assert [str(o) for o in loaded.overrides] == [
        "network.dim = 32 (was None)",
        "dataset.subsets[0].repeats = 5 (was None)",
        "optimizer.learning_rate = 0.001 (was None)",
    ]
    assert errors_of(path, ("network.dim=0", "dataset.subsets.3.repeats=2", "oops")) == [
        "--set dataset.subsets.3.repeats=2: dataset.subsets[3] does not exist in the spec",
        "--set oops: write it as yaml.path=value, e.g. network.dim=32",
        "--set network.dim=0: network.dim: must be at least 1 (got 0)",
    ]


def test_override_replaces_a_value_from_the_file(write_spec):
    loaded = load_spec(write_spec(MINIMAL + "training:\n  epochs: 4\n"), ("training.epochs=6",))
    assert loaded.spec.training.epochs == 6
    assert str(loaded.overrides[0]) == "training.epochs = 6 (was 4)"


def test_model_source_forms(write_spec):
    hub = MINIMAL.replace(
        "source: models/base.safetensors",
        "source: {type: hub, repo: a/b, file: m.safetensors, revision: abc}",
    )
    source = load_spec(write_spec(hub)).spec.model.source
    assert isinstance(source, HubSource) and (source.repo, source.file, source.revision) == (
        "a/b",
        "m.safetensors",
        "abc",
    )
    alias = load_spec(write_spec(MINIMAL.replace("source: models/base.safetensors", "source: sd15"))).spec
    assert alias.model.source.type == "alias" and alias.model.source.name == "sd15"
    bad = write_spec(MINIMAL.replace("source: models/base.safetensors", "source: {type: hub, repo: a/b}"))
    assert errors_of(bad) == ["spec.yaml:2: model.source.file: is required"]


def test_cross_field_rules_are_errors_at_the_field(write_spec):
    path = write_spec(
        MINIMAL.replace("type: lora", "type: dylora\n  dim: 10\n  unit: 4")
        + "training:\n  epochs: 2\n  max_steps: 100\n"
        + "scheduler:\n  type: constant\n  warmup_steps: 10\n"
        + "launch:\n  num_processes: 2\n  gpu_ids: [0]\n"
    )
    path.write_text(path.read_text().replace("    - path: img/10_sks", "    - path: img/10_sks\n      color_aug: true"))
    assert errors_of(path) == [
        "spec.yaml:14: training.max_steps: give either training.epochs or training.max_steps, not both",
        "spec.yaml:17: scheduler.warmup_steps: sd-scripts refuses a warmup with the constant schedule; "
        "use constant_with_warmup or drop the warmup",
        "spec.yaml:7: dataset.subsets[0].color_aug: color_aug changes the pixels every epoch, so it cannot be used "
        "with cached latents; set training.cache_latents: off",
        "spec.yaml:11: network.unit: network.dim (10) must be a multiple of the unit (4)",
        "spec.yaml:20: launch.gpu_ids: lists 1 GPU(s) for 2 process(es); give one per process",
    ]


def test_guide_practice_becomes_warnings(write_spec):
    path = write_spec(
        """\
        model:
          source: models/base.safetensors
        dataset:
          resolution: 500
          subsets:
            - path: img/10_sks
        network:
          type: loha
          dim: 64
          alpha: 8
        optimizer:
          type: DAdaptAdam
          learning_rate: 1e-4
        """
    )
    assert [str(w) for w in load_spec(path).warnings] == [
        "spec.yaml:13: warning: optimizer.learning_rate: DAdaptAdam adapts its own step size; "
        "the guide sets the learning rate to 1.0 (got 0.0001)",
        "spec.yaml:9: warning: network.dim: the guide keeps loha dim at 32 or less (got 64)",
        "spec.yaml:10: warning: network.alpha: the guide uses alpha 1 for loha (got 8)",
        "spec.yaml:4: warning: dataset.resolution: [500, 500] is not a multiple of 64",
    ]


def test_alpha_above_dim_and_ckpt_warn(write_spec):
    path = write_spec(MINIMAL.replace("type: lora", "type: lora\n  dim: 8\n  alpha: 16") + "output:\n  format: ckpt\n")
    assert [str(w) for w in load_spec(path).warnings] == [
        "spec.yaml:10: warning: network.alpha: alpha 16 is above dim 8: the weights are scaled up by 2",
        "spec.yaml:12: warning: output.format: ckpt files are pickles that can run code when loaded; prefer safetensors",
    ]


def test_variant_fields_are_checked_per_type(write_spec):
    path = write_spec(MINIMAL.replace("type: lora", "type: lora\n  unit: 4"))
    assert errors_of(path) == ["spec.yaml:9: network.unit: unknown key 'unit' for type lora; only type dylora has it"]
    dylora = load_spec(write_spec(MINIMAL.replace("type: lora", "type: dylora\n  dim: 16\n  unit: 4"))).spec.network
    assert isinstance(dylora, DyLoraNetwork) and dylora.unit == 4


def test_path_syntax_round_trips():
    assert parse_path("dataset.subsets[0].repeats") == ("dataset", "subsets", 0, "repeats")
    assert parse_path("dataset.subsets.0.repeats") == ("dataset", "subsets", 0, "repeats")
    assert format_path(("dataset", "subsets", 0, "repeats")) == "dataset.subsets[0].repeats"
    with pytest.raises(ValueError):
        parse_path("dataset..x")
