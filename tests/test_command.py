"""build/command.py: the accelerate argv for one machine and for several (list equality, nothing run)."""

from __future__ import annotations

import json
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


def test_each_machine_runs_with_its_own_rank_through_the_stand_in_install(tmp_path, monkeypatch):
    """Two runs of one spec, machine_rank 0 and 1, as two machines would start them, each recording its own
    argv; a machine other than 0 ends succeeded without a checkpoint of its own (sd-scripts saves on 0)."""
    import yaml
    from fake_project import fake_project

    from artlab_kohya.run.train import RunOptions, run_spec

    extra = "launch:\n  num_machines: 2\n  main_process_ip: 10.1.2.3\n  main_process_port: 29600\n"
    project = fake_project(tmp_path, monkeypatch, extra=extra)
    outcomes = []
    for rank in (0, 1):
        loaded = load_spec(project / "spec.yaml", (f"launch.machine_rank={rank}",))
        outcomes.append(run_spec(loaded, RunOptions(runs_root=project / f"machine{rank}", plain=True)))
    for rank, outcome in enumerate(outcomes):
        argv = yaml.safe_load((outcome.folder / "spec.lock.yaml").read_text())["argv"]
        i = argv.index("--machine_rank")
        assert argv[i - 11 : i + 9] == [
            "--num_processes", "2", "--num_machines", "2", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--num_cpu_threads_per_process", "2", "--multi_gpu", "--machine_rank", str(rank),
            "--main_process_ip", "10.1.2.3", "--main_process_port", "29600", "--rdzv_backend", "static",
            "--same_network",
        ]  # fmt: skip
    assert [o.status for o in outcomes] == ["succeeded", "succeeded"]
    # the stand-in saves on the main process only (RANK 0, from its accelerate), as sd-scripts does
    main, other = (json.loads((o.folder / "result.json").read_text()) for o in outcomes)
    assert main["diagnosis"] is None and Path(main["final"]).is_file()
    assert other["diagnosis"] == "Machine 1 of 2: its processes trained; machine 0 saves the checkpoints."
    assert not list((outcomes[1].folder / "checkpoints").glob("*.safetensors"))
