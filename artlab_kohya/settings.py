"""Every environment variable artlab-kohya reads and every default path it uses, in one place.

Nothing here touches the disk or imports anything heavy: reading a setting is a function call, so a
test (or a user) can change the environment between calls.
"""

from __future__ import annotations

import os
from pathlib import Path

# The variables, by name: what each one means is said where it is read, below.
KOHYA_DIR = "ARTLAB_KOHYA_DIR"  # an sd-scripts (or kohya_ss) folder, when the spec names none
KOHYA_PYTHON = "ARTLAB_KOHYA_PYTHON"  # the trainer's Python or venv, when the spec names none
RUNS = "ARTLAB_KOHYA_RUNS"  # the runs root, instead of runs/ beside the spec
CACHE = "ARTLAB_KOHYA_CACHE"  # artlab-kohya's own cache (hashes, surfaces, versions, smoke assets)
TOKENIZERS = "ARTLAB_KOHYA_TOKENIZERS"  # CLIP tokenizer folders for sd-scripts' --tokenizer_cache_dir
HF_OFFLINE = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # Hugging Face's own switches, honoured as they are
HF_ENDPOINT = "HF_ENDPOINT"
# SLURM's own variables, read inside a job (what a job script sees): which job, which task of an array,
# how often it was requeued, and the nodes it spans (one trainer launch per node).
SLURM_JOB_ID = "SLURM_JOB_ID"
SLURM_ARRAY_TASK_ID = "SLURM_ARRAY_TASK_ID"
SLURM_RESTART_COUNT = "SLURM_RESTART_COUNT"
SLURM_NODEID = "SLURM_NODEID"
SLURM_NNODES = "SLURM_NNODES"
SLURM_JOB_NODELIST = "SLURM_JOB_NODELIST"
SLURMD_NODENAME = "SLURMD_NODENAME"  # the node this step runs on, as SLURM names it
SLURM_COMMAND_TIMEOUT = 10.0  # seconds any sbatch/squeue/sacct/scontrol/scancel call may take

_TRUE = {"1", "ON", "YES", "TRUE"}


def _path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def kohya_dir() -> Path | None:
    return _path(KOHYA_DIR)


def kohya_python() -> str | None:
    return os.environ.get(KOHYA_PYTHON) or None


def runs_root(spec_path: Path, chosen: Path | None = None) -> Path:
    """Where a spec's runs go: `chosen` (--runs-dir), else $ARTLAB_KOHYA_RUNS, else runs/ next to the spec
    (so runs stay with the project); always absolute, since the trainer runs in its own folder."""
    return (chosen.expanduser() if chosen else _path(RUNS) or spec_path.resolve().parent / "runs").absolute()


def listed_runs_root() -> Path:
    """Where `runs` looks without a DIR: $ARTLAB_KOHYA_RUNS, else runs/ in the current folder."""
    return _path(RUNS) or Path("runs")


def cache_root() -> Path:
    """artlab-kohya's own cache folder: $ARTLAB_KOHYA_CACHE, else ~/.cache/artlab-kohya."""
    return _path(CACHE) or Path.home() / ".cache" / "artlab-kohya"


def tokenizer_root() -> Path:
    """Where CLIP tokenizers for `--tokenizer_cache_dir` live: $ARTLAB_KOHYA_TOKENIZERS (e.g. an offline
    kohya setup's folder), else the cache's `tokenizers/`."""
    return _path(TOKENIZERS) or cache_root() / "tokenizers"


def hf_offline() -> bool:
    return any(os.environ.get(n, "").strip().upper() in _TRUE for n in HF_OFFLINE)


def hf_endpoint() -> str:
    return os.environ.get(HF_ENDPOINT, "https://huggingface.co").rstrip("/")


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, as huggingface_hub finds it (HF_HUB_CACHE, else HF_HOME/hub)."""
    if hub := os.environ.get("HF_HUB_CACHE"):
        return Path(hub).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home).expanduser() / "hub"


def slurm_job() -> dict[str, str]:
    """The SLURM variables of the job this process runs in (empty outside a job)."""
    names = (
        SLURM_JOB_ID, SLURM_ARRAY_TASK_ID, SLURM_RESTART_COUNT, SLURM_NODEID, SLURM_NNODES, SLURM_JOB_NODELIST,
        SLURMD_NODENAME,
    )  # fmt: skip
    return {n: os.environ[n] for n in names if os.environ.get(n)}
