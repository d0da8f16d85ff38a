"""The trainer's command line, built from the spec: pure, recorded as it is, tested by list equality."""

from __future__ import annotations

from pathlib import Path

from ..spec.families import Family, script_for
from ..spec.model import Spec
from ..trainer.install import INSIDE_SCRIPTS, Install
from ..trainer.process import CHILD_ENV
from .speed import Speed

DEFAULT_MAIN_PORT = 29500  # accelerate's own default, passed so that the argv says it


def build_command(
    spec: Spec,
    install: Install,
    config_path: Path,
    family: Family,
    *,
    offline: bool = False,
    speed: Speed | None = None,
) -> tuple[list[str], dict[str, str]]:
    """argv and the environment variables to add for `accelerate launch <script> --config_file`.

    Every value accelerate would otherwise default (and warn about) is passed, so the argv is the
    whole record of how the trainer was started.
    """
    launch = spec.launch
    total = launch.num_processes * launch.num_machines  # accelerate's --num_processes counts all machines'
    argv = [
        install.python, "-m", "accelerate.commands.launch",
        "--num_processes", str(total),
        "--num_machines", str(launch.num_machines),
        "--mixed_precision", launch.mixed_precision or spec.training.mixed_precision,
        "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", str(launch.cpu_threads),
    ]  # fmt: skip
    if total > 1:  # torchrun, one process per GPU (on a machine without CUDA: CPU processes, gloo)
        argv.append("--multi_gpu")
    if launch.num_machines > 1:
        argv += [
            "--machine_rank", str(launch.machine_rank),
            "--main_process_ip", str(launch.main_process_ip),
            "--main_process_port", str(launch.main_process_port or DEFAULT_MAIN_PORT),
            "--rdzv_backend", launch.rdzv_backend,
        ]  # fmt: skip
        if launch.same_network:
            argv.append("--same_network")
    if launch.gpu_ids is not None:
        argv += ["--gpu_ids", ",".join(str(g) for g in launch.gpu_ids)]
    if speed is not None and speed.cudnn_benchmark:  # a flag sd-scripts has no option for: set, then its script
        argv += [str(INSIDE_SCRIPTS / "torch_flags.py"), "--cudnn-benchmark"]
    argv += [str(install.dir / script_for(family)), "--config_file", str(config_path)]
    env = dict(CHILD_ENV)
    if offline:
        env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return argv, env
