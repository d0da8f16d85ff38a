"""One run over two machines against the real sd-scripts (marked `engine`): two `artlab-kohya run`s, ranks
0 and 1, each a "machine" of one CPU process, meeting on loopback through accelerate's torchrun
(rendezvous static, gloo). 10 images at 64 px, batch 2, 1 epoch: 5 batches over 2 processes -> 3 steps
each, the plan's number (one process would take 5), and the trainer's own count on both machines.

accelerate 1.6.0 cannot run sd-scripts on several CPU processes as it is: on MULTI_CPU it wraps every
prepared model in DistributedDataParallel, also one without a trainable parameter (its MULTI_GPU branch
skips those), and sd-scripts prepares its frozen U-Net, so both ranks stop with "DistributedDataParallel
is not needed when a module doesn't have any parameter that requires a gradient". The test gives the
trainer's Python a sitecustomize (in its own temp folder, through PYTHONPATH) that applies the MULTI_GPU
rule to MULTI_CPU; GPUs take the MULTI_GPU branch and need nothing of the kind.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine

SHIM = """\
import accelerate.accelerator as _a

_prepare_model = _a.Accelerator.prepare_model


def prepare_model(self, model, device_placement=None, evaluation_mode=False):
    if self.distributed_type == _a.DistributedType.MULTI_CPU and not any(p.requires_grad for p in model.parameters()):
        return model.to(self.device) if device_placement is not False else model
    return _prepare_model(self, model, device_placement=device_placement, evaluation_mode=evaluation_mode)


_a.Accelerator.prepare_model = prepare_model
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def two_machine_project(engine: dict[str, str], root: Path, images, launch: str) -> Path:
    """The run of the two-machine tests (here and in test_slurm.py): 10 images at 64 px, batch 2, 1 epoch,
    `launch` the lines under launch:, and the shim in root/shim for the trainer's PYTHONPATH. Returns the
    spec's path."""
    images(root / "img/1_sks", [(64, 64)] * 10)
    spec = root / "spec.yaml"
    spec.write_text(
        f"model:\n  source: {engine['ENGINE_MODEL']}\n  family: sd15\n"
        "dataset:\n  resolution: 64\n  batch_size: 2\n  buckets:\n    enabled: false\n"
        "  subsets:\n    - path: img/1_sks\n"
        "network:\n  type: lora\n  dim: 4\n  alpha: 1\n"
        "training:\n  epochs: 1\n  mixed_precision: 'no'\n"
        "output:\n  name: two\n  log_with: none\n"
        f"launch:\n{launch}"
        f"kohya:\n  dir: {engine['ARTLAB_KOHYA_DIR']}\n  python: {engine['ENGINE_PYTHON']}\n"
    )
    (root / "shim").mkdir()
    (root / "shim" / "sitecustomize.py").write_text(SHIM)
    return spec


def test_one_run_over_two_machines_on_loopback(engine, tmp_path, images):
    launch = f"  num_machines: 2\n  main_process_ip: 127.0.0.1\n  main_process_port: {free_port()}\n"
    spec = two_machine_project(engine, tmp_path, images, launch)
    env = {
        **os.environ,
        "ARTLAB_KOHYA_TOKENIZERS": engine["ENGINE_TOKENIZERS"],
        "ARTLAB_KOHYA_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(tmp_path / "shim"),
    }
    plan = subprocess.run(
        [sys.executable, "-m", "artlab_kohya", "plan", str(spec), "--json"], env=env, capture_output=True, text=True
    )
    planned = json.loads(plan.stdout)
    assert (planned["total_steps"], planned["processes"], planned["machines"], planned["effective_batch"]) == (
        3,
        1,
        2,
        4,
    )
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "artlab_kohya",
                "run",
                str(spec),
                "--plain",
                "--ignore-dataset-errors",
                "--runs-dir",
                str(tmp_path / f"machine{rank}"),
                "--set",
                f"launch.machine_rank={rank}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [p.communicate(timeout=1200)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    folders = [next((tmp_path / f"machine{rank}" / "two").iterdir()) for rank in (0, 1)]
    for rank, folder in enumerate(folders):
        lock = (folder / "spec.lock.yaml").read_text()
        assert f"- --machine_rank\n- '{rank}'" in lock and "- --num_processes\n- '2'" in lock
        events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
        summary = next(e for e in events if e["type"] == "TrainingSummary")
        assert summary["total_steps"] == 3  # the trainer's own count on each machine: the plan's
        assert summary["batches_per_epoch"] == 3
        assert [e["step"] for e in events if e["type"] == "Step"][-1] == 3
    assert "steps for 1 epochs is / 指定エポックまでのステップ数: 3" in (folders[0] / "stdout.log").read_text()
    main, other = (json.loads((f / "result.json").read_text()) for f in folders)
    assert main["status"] == "succeeded" and Path(main["final"]).name == "two.safetensors"
    assert other["status"] == "succeeded" and "machine 0 saves the checkpoints" in other["diagnosis"]
