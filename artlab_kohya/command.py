"""The launch command as data: `build_command(...) -> (argv, env)` is pure, so the argv that is
recorded is the argv that runs, and tests compare it with list equality."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .render import ConcreteFamily, script_for
from .spec.model import Spec


@dataclass(frozen=True)
class Install:
    """An sd-scripts folder and the Python that runs it."""

    dir: Path
    python: str
    commit: str | None = None


# Environment the trainer needs for its output to be readable live: unbuffered stdout (it is
# block-buffered on a pipe otherwise), wide rich logs (wrapped at 80 columns otherwise), UTF-8.
CHILD_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "COLUMNS": "200"}


def build_command(
    spec: Spec, install: Install, config_path: Path, family: ConcreteFamily, *, offline: bool = False
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
