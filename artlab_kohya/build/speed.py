"""How fast a run goes, chosen from the spec, the machine and the card: only settings that do not change
what is learned. Every choice comes with its reason, for `plan`, the lock and result.json; a value the
spec sets itself always wins.

profile default:
    data-loader workers from the CPUs and memory (machine.py), persistent when there are any;
    AdamW's fused implementation on a CUDA card (one kernel for the whole update instead of several per
    tensor; the same arithmetic); on a card of 24 GiB or more, latents cached four images at a time (the
    time to the first step: 21 s -> 9 s for 64 images at 512 px on an H200; the latents differ only by
    rounding).
profile fast, on top:
    the fastest stable settings `artlab-kohya tune` measured for this (card, family, resolution, network,
    batch), cached in the cache folder's tune.json; and latents cached four images at a time on any CUDA
    card. cuDNN autotuning is a tune candidate, not a default: on an H200 it made the first step 18 s
    slower and no step faster.

Whatever is chosen reaches the trainer as ordinary config keys (render) and, for cuDNN, as the entry
script that sets the flag before sd-scripts' own script runs (build/command.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import settings
from ..machine import Machine, data_loader_workers
from ..spec.families import Family
from ..spec.model import Spec

TUNE_FILE = "tune.json"
SET = "set in the spec"
FUSED_OPTIMIZERS = {"adamw", "torch.optim.adamw"}  # sd-scripts' names for torch.optim.AdamW
VAE_BATCH = 4  # images the VAE encodes at once while caching latents
VAE_BATCH_MEMORY = 24 << 30  # the default profile batches the VAE on cards this large
# What a tune result may set, and where: spec field -> how a Speed carries it. Nothing else is applied.
TUNABLE = (
    "training.workers",
    "training.persistent_workers",
    "launch.cudnn_benchmark",
    "kohya.extra_args.vae_batch_size",
    "kohya.extra_args.torch_compile",
    "kohya.extra_args.dynamo_backend",
)


@dataclass(frozen=True)
class Card:
    """The trainer's first GPU as its version probe saw it; None fields where it has none or did not say."""

    name: str | None
    memory_bytes: int | None
    cuda: bool | None  # None: not known (not probed)

    @classmethod
    def from_versions(cls, versions: dict[str, Any] | None) -> Card:
        torch = (versions or {}).get("torch") or {}
        if not isinstance(torch, dict) or "cuda_available" not in torch:
            return cls(None, None, None)
        gpus = torch.get("gpus") or []
        first = gpus[0] if gpus and isinstance(gpus[0], dict) else {}
        return cls(first.get("name"), first.get("memory_bytes"), bool(torch.get("cuda_available")))


@dataclass(frozen=True)
class Choice:
    setting: str  # the spec field, e.g. training.workers
    value: Any
    why: str


@dataclass(frozen=True)
class Speed:
    workers: int
    persistent_workers: bool
    optimizer_args: dict[str, Any] = field(default_factory=dict)  # added to optimizer.args
    extra_args: dict[str, Any] = field(default_factory=dict)  # added to kohya.extra_args
    cudnn_benchmark: bool = False
    profile: str = "default"
    choices: tuple[Choice, ...] = ()
    tuned: dict[str, Any] | None = None  # the tune.json entry applied (profile fast), if any

    def record(self) -> dict[str, Any]:
        """For the lock and result.json."""
        return {
            "profile": self.profile,
            "choices": [{"setting": c.setting, "value": c.value, "why": c.why} for c in self.choices],
            "tuned": self.tuned,
        }

    def lines(self) -> list[str]:
        """For plan and run: one line a choice."""
        return [f"{c.setting} = {json.dumps(c.value)}: {c.why}" for c in self.choices]


def tune_key(spec: Spec, family: Family | str, card: Card) -> str:
    """What a tune result is valid for: the card, the family, the resolution, the network and the batch."""
    res = spec.dataset.resolution
    side = f"{res[0]}x{res[1]}" if isinstance(res, list) else f"{res}"
    net = spec.network
    dim = getattr(net, "dim", None)
    return f"{card.name or 'cpu'}|{family}|{side}|{net.type}{'' if dim is None else dim}|b{spec.dataset.batch_size}"


def tune_file() -> Path:
    return settings.cache_root() / TUNE_FILE


def read_tuned(path: Path | None = None) -> dict[str, Any]:
    """tune.json: {key: {settings, images_per_s, ...}}; {} when absent or unreadable (it is a cache)."""
    try:
        data = json.loads((path or tune_file()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def choose_speed(
    spec: Spec, family: Family, machine: Machine, card: Card, tuned: dict[str, Any] | None = None
) -> Speed:
    """The speed settings of this run; `tuned` is tune.json's contents (read_tuned()), used by profile fast."""
    t, launch = spec.training, spec.launch
    choices: list[Choice] = []
    entry = (tuned or {}).get(tune_key(spec, family, card)) if launch.profile == "fast" else None
    applied: dict[str, Any] = dict(entry.get("settings") or {}) if isinstance(entry, dict) else {}
    applied = {k: v for k, v in applied.items() if k in TUNABLE}
    tuned_why = f"tuned on {card.name or 'this CPU'} ({entry.get('date', '?')})" if entry else ""

    if t.workers != "auto":
        workers = t.workers
        per_process = machine.cpus // max(1, launch.num_processes)
        too_many = f"; more than the {per_process} CPUs each training process has here (they compete with it)"
        choices.append(Choice("training.workers", workers, SET + (too_many if workers > per_process else "")))
    elif "training.workers" in applied:
        workers = int(applied["training.workers"])
        choices.append(Choice("training.workers", workers, tuned_why))
    else:
        workers, why = data_loader_workers(machine, launch.num_processes, launch.cpu_threads)
        choices.append(Choice("training.workers", workers, why))

    if t.persistent_workers != "auto":
        persistent = t.persistent_workers
        if persistent and workers == 0:  # torch's DataLoader refuses persistent workers without workers
            persistent = False
            choices.append(Choice("training.persistent_workers", False, "no workers to keep (torch refuses it then)"))
        else:
            choices.append(Choice("training.persistent_workers", persistent, SET))
    elif "training.persistent_workers" in applied:
        persistent = bool(applied["training.persistent_workers"]) and workers > 0
        choices.append(Choice("training.persistent_workers", persistent, tuned_why))
    else:
        persistent = workers > 0
        why = "workers kept between epochs" if persistent else "no workers to keep"
        choices.append(Choice("training.persistent_workers", persistent, why))

    optimizer_args: dict[str, Any] = {}
    opt = spec.optimizer
    if opt.type.lower() in FUSED_OPTIMIZERS and not {"fused", "foreach"} & set(opt.args):
        if card.cuda:
            optimizer_args["fused"] = True
            choices.append(
                Choice("optimizer.args.fused", True, "AdamW on a CUDA card: one fused kernel, the same update")
            )
        else:
            why = "no CUDA card" if card.cuda is False else "the trainer's card is not known here (run asks it)"
            choices.append(Choice("optimizer.args.fused", False, why))

    extra: dict[str, Any] = {}
    cudnn = launch.cudnn_benchmark
    if cudnn is not None:
        choices.append(Choice("launch.cudnn_benchmark", cudnn, SET))
    else:
        if "launch.cudnn_benchmark" in applied:
            cudnn = bool(applied["launch.cudnn_benchmark"])
            choices.append(Choice("launch.cudnn_benchmark", cudnn, tuned_why))
        else:  # measured on an H200 (BENCHMARKS.md): its first step took 18 s longer and no step got faster
            cudnn = False
    if launch.profile == "fast":
        for setting, value in applied.items():
            key = setting.removeprefix("kohya.extra_args.")
            if setting.startswith("kohya.extra_args.") and key not in spec.kohya.extra_args:
                extra[key] = value
                choices.append(Choice(setting, value, tuned_why))
    big_card = (card.memory_bytes or 0) >= VAE_BATCH_MEMORY
    if (
        "vae_batch_size" not in extra
        and "vae_batch_size" not in spec.kohya.extra_args
        and card.cuda
        and t.cache_latents != "off"
        and (big_card or launch.profile == "fast")
    ):
        extra["vae_batch_size"] = VAE_BATCH
        why = "a card of 24 GiB or more" if big_card else "profile fast on a CUDA card"
        choices.append(
            Choice(
                "kohya.extra_args.vae_batch_size",
                VAE_BATCH,
                f"{why}: latents cached {VAE_BATCH} images at a time (2.3x faster caching on an H200)",
            )
        )
    return Speed(
        workers=workers,
        persistent_workers=persistent,
        optimizer_args=optimizer_args,
        extra_args=extra,
        cudnn_benchmark=bool(cudnn),
        profile=launch.profile,
        choices=tuple(choices),
        tuned=entry if entry else None,
    )


def fixed_speed(spec: Spec) -> Speed:
    """The spec's own values, "auto" read as sd-scripts' conservative ones; for callers with no machine."""
    t = spec.training
    workers = 0 if t.workers == "auto" else t.workers
    persistent = False if t.persistent_workers == "auto" else t.persistent_workers
    return Speed(workers, persistent, cudnn_benchmark=bool(spec.launch.cudnn_benchmark), profile=spec.launch.profile)
