"""build/command.py: the accelerate argv for one machine and for several (list equality, nothing run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from artlab_kohya.build.command import build_command
from artlab_kohya.spec import SpecError, load_spec
from artlab_kohya.trainer.install import Install

INSTALL = Install(dir=Path("/opt/sd-scripts"), python="/opt/venv/bin/python")
SPEC = """\
model: {{source: base.safetensors, family: sd15}}
dataset: {{subsets: [{{path: img/10_sks}}]}}
network: {{type: lora}}
training: {{mixed_precision: 'no'}}
launch:
{launch}
"""


def argv_for(write_spec, launch: str) -> list[str]:
    loaded = load_spec(write_spec(SPEC.format(launch=launch)))
    argv, _ = build_command(loaded.spec, INSTALL, Path("/run/config.toml"), "sd15")
    return argv[3:-3]  # between `python -m accelerate.commands.launch` and the script


def test_one_machine_one_process(write_spec):
    assert argv_for(write_spec, "  num_processes: 1") == [
        "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", "2",
    ]  # fmt: skip


def test_two_machines_pass_the_total_and_the_rendezvous(write_spec):
    """accelerate's --num_processes is the total over machines (torchrun gets total / machines per node);
    --multi_gpu is its only path to torchrun, also with one process per machine."""
    launch = "  num_processes: 1\n  num_machines: 2\n  machine_rank: 1\n  main_process_ip: 127.0.0.1\n  main_process_port: 29611"
    assert argv_for(write_spec, launch) == [
        "--num_processes", "2", "--num_machines", "2", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", "2", "--multi_gpu",
        "--machine_rank", "1", "--main_process_ip", "127.0.0.1", "--main_process_port", "29611",
        "--rdzv_backend", "static", "--same_network",
    ]  # fmt: skip
    launch = (
        "  num_processes: 4\n  num_machines: 2\n  main_process_ip: node01\n  rdzv_backend: c10d\n  same_network: false"
    )
    argv = argv_for(write_spec, launch)
    assert argv[:4] == ["--num_processes", "8", "--num_machines", "2"]
    assert argv[-9:] == [
        "--multi_gpu", "--machine_rank", "0", "--main_process_ip", "node01", "--main_process_port", "29500",
        "--rdzv_backend", "c10d",
    ]  # fmt: skip


def test_machine_fields_that_cannot_work_are_located(write_spec):
    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(SPEC.format(launch="  num_machines: 2\n  machine_rank: 2")))
    text = "\n".join(str(i) for i in caught.value.issues)
    assert "launch.machine_rank: must be below launch.num_machines (2)" in text
    assert "launch.main_process_ip: num_machines > 1 needs the address of machine 0" in text
