"""build/speed.py and machine.py: the speed choices, each with its reason, and the spec's own values first."""

from __future__ import annotations

from pathlib import Path

import pytest

from artlab_kohya.build.command import build_command
from artlab_kohya.build.speed import Card, choose_speed, tune_key
from artlab_kohya.machine import Machine, data_loader_workers
from artlab_kohya.spec.model import Spec
from artlab_kohya.trainer.install import INSIDE_SCRIPTS, Install

H200 = Card("NVIDIA H200", 143_771 << 20, True)
CPU = Card(None, None, False)
BIG = Machine(cpus=16, memory_available=120 << 30)


def spec(**sections) -> Spec:
    data = {
        "model": {"source": "base.safetensors"},
        "dataset": {"subsets": [{"path": "img/10_x"}]},
        "network": {"type": "lora", "dim": 128, "alpha": 64},
    }
    for key, value in sections.items():
        data[key] = value
    return Spec.model_validate(data)


@pytest.mark.parametrize(
    ("machine", "processes", "expected"),
    [
        (Machine(16, 120 << 30), 1, 4),  # capped
        (Machine(16, 120 << 30), 8, 0),  # 2 CPUs a process, both its own threads'
        (Machine(2, 8 << 30), 1, 0),  # the CI VM: nothing to spare
        (Machine(6, 8 << 30), 1, 4),
        (Machine(16, 3 << 30), 1, 1),  # memory for one 2 GiB worker
        (Machine(16, None), 2, 4),
    ],
)
def test_workers_follow_cpus_processes_and_memory(machine, processes, expected):
    workers, why = data_loader_workers(machine, processes, cpu_threads=2)
    assert workers == expected
    assert f"{machine.cpus} CPUs" in why


def test_default_profile_on_a_cuda_card():
    s = choose_speed(spec(), "sd15", BIG, H200)
    assert (s.workers, s.persistent_workers, s.optimizer_args, s.cudnn_benchmark, s.extra_args) == (
        4,
        True,
        {"fused": True},
        False,
        {"vae_batch_size": 4},
    )
    assert [c.setting for c in s.choices] == [
        "training.workers",
        "training.persistent_workers",
        "optimizer.args.fused",
        "kohya.extra_args.vae_batch_size",
    ]
    small = choose_speed(spec(), "sd15", BIG, Card("NVIDIA GeForce RTX 3060", 12 << 30, True))
    assert small.extra_args == {}  # a 12 GiB card batches the VAE only with profile fast
    assert choose_speed(spec(launch={"profile": "fast"}), "sd15", BIG, Card("x", 12 << 30, True)).extra_args == {
        "vae_batch_size": 4
    }


def test_what_the_spec_sets_wins():
    s = choose_speed(
        spec(
            training={"workers": 0, "persistent_workers": False},
            optimizer={"args": {"fused": False}},
            launch={"profile": "fast", "cudnn_benchmark": False},
            kohya={"extra_args": {"vae_batch_size": 1}},
        ),
        "sd15",
        BIG,
        H200,
    )
    assert (s.workers, s.persistent_workers, s.optimizer_args, s.cudnn_benchmark, s.extra_args) == (
        0,
        False,
        {},
        False,
        {},
    )
    assert [(c.setting, c.why) for c in s.choices] == [
        ("training.workers", "set in the spec"),
        ("training.persistent_workers", "set in the spec"),
        ("launch.cudnn_benchmark", "set in the spec"),
    ]


def test_persistent_workers_without_workers_is_turned_off():
    """torch's DataLoader raises on persistent_workers with num_workers 0 (a GUI config can say both)."""
    s = choose_speed(spec(training={"workers": 0, "persistent_workers": True}), "sd15", BIG, H200)
    assert s.persistent_workers is False
    assert "torch refuses it" in s.lines()[1]
    small = choose_speed(spec(training={"persistent_workers": True}), "sd15", Machine(2, 8 << 30), H200)
    assert (small.workers, small.persistent_workers) == (0, False)


def test_no_fused_adamw_without_cuda_or_for_other_optimizers():
    assert choose_speed(spec(), "sd15", BIG, CPU).optimizer_args == {}
    assert "not known" in choose_speed(spec(), "sd15", BIG, Card(None, None, None)).choices[-1].why
    lion = choose_speed(spec(optimizer={"type": "Lion"}), "sd15", BIG, H200)
    assert lion.optimizer_args == {}


def test_fast_profile_untuned_and_tuned():
    fast = spec(launch={"profile": "fast"})
    untuned = choose_speed(fast, "sd15", BIG, H200, tuned={})
    assert not untuned.cudnn_benchmark and untuned.extra_args == {"vae_batch_size": 4}
    key = tune_key(fast, "sd15", H200)
    assert key == "NVIDIA H200|sd15|512|lora128|b1"
    entry = {"settings": {"training.workers": 8, "kohya.extra_args.torch_compile": True, "dataset.batch_size": 64}}
    tuned = choose_speed(fast, "sd15", BIG, H200, tuned={key: entry | {"date": "2026-11-28"}})
    assert tuned.workers == 8 and tuned.extra_args["torch_compile"] is True
    assert "dataset.batch_size" not in [c["setting"] for c in tuned.record()["choices"]]  # never from the cache
    assert any("tuned on NVIDIA H200 (2026-11-28)" in line for line in tuned.lines())
    other_card = choose_speed(fast, "sd15", BIG, Card("NVIDIA A100", None, True), tuned={key: entry})
    assert other_card.workers == 4 and other_card.tuned is None


def test_cudnn_benchmark_starts_the_script_through_the_flags_entry(tmp_path: Path):
    install = Install(dir=tmp_path, python="/venv/bin/python")
    s = choose_speed(spec(launch={"cudnn_benchmark": True}), "sd15", BIG, H200)
    argv, _ = build_command(spec(), install, tmp_path / "config.toml", "sd15", speed=s)
    i = argv.index(str(INSIDE_SCRIPTS / "torch_flags.py"))
    assert argv[i + 1 : i + 4] == ["--cudnn-benchmark", str(tmp_path / "train_network.py"), "--config_file"]
    plain, _ = build_command(spec(), install, tmp_path / "config.toml", "sd15")
    assert str(INSIDE_SCRIPTS / "torch_flags.py") not in plain


def test_more_workers_than_cpus_is_said():
    s = choose_speed(spec(training={"workers": 100}), "sd15", Machine(2, 8 << 30), H200)
    assert s.workers == 100
    assert "more than the 2 CPUs each training process has here" in s.lines()[0]
