"""The trainer's command line, built from the spec: pure, recorded as it is, tested by list equality."""

from __future__ import annotations

from pathlib import Path

from ..spec.families import Family, script_for
from ..spec.model import Spec
from ..trainer.install import Install
from ..trainer.process import CHILD_ENV


def build_command(
    spec: Spec, install: Install, config_path: Path, family: Family, *, offline: bool = False
) -> tuple[list[str], dict[str, str]]:
    """argv and the environment variables to add for `accelerate launch <script> --config_file`.

    Every value accelerate would otherwise default (and warn about) is passed, so the argv is the
    whole record of how the trainer was started.
    """
    launch = spec.launch
    argv = [
        install.python, "-m", "accelerate.commands.launch",
        "--num_processes", str(launch.num_processes),
        "--num_machines", "1",
        "--mixed_precision", launch.mixed_precision or spec.training.mixed_precision,
        "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", str(launch.cpu_threads),
    ]  # fmt: skip
    if launch.num_processes > 1:
        argv.append("--multi_gpu")
    if launch.gpu_ids is not None:
        argv += ["--gpu_ids", ",".join(str(g) for g in launch.gpu_ids)]
    argv += [str(install.dir / script_for(family)), "--config_file", str(config_path)]
    env = dict(CHILD_ENV)
    if offline:
        env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return argv, env
