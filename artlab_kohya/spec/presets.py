"""`init --preset`: a commented starting spec and a kohya-style dataset folder.

The numbers are the Kohya LoRA guide's beginner table; the template says so next to each one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class Preset:
    title: str
    repeats: int
    repeats_why: str
    clip_skip: int
    clip_skip_why: str
    shuffle: bool
    keep_tokens: int


PRESETS = {
    "anime": Preset(
        "an anime character or subject", 10, "the guide: 7-15 for anime", 2,
        "2 for anime models (the guide)", True, 1,
    ),
    "person": Preset(
        "a real person", 25, "the guide: 20-30 for people", 1, "1 for realistic models (the guide)", False, 0,
    ),
    "object": Preset(
        "an object", 40, "the guide: 30-100 for objects", 1, "1 for realistic models (the guide)", False, 0,
    ),
    "style": Preset(
        "an art style", 10, "not in the guide's table: our choice, as for anime", 1,
        "1, as for realistic models; use 2 for an anime base model", True, 0,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class BatchChoice:
    size: int
    why: str
    checkpointing: bool


def batch_for_vram(vram_gb: float | None) -> BatchChoice:
    """The guide at 512x512: 12 GB -> 6, 6 GB -> 4. Below 6 GB is our extrapolation."""
    if vram_gb is None:
        return BatchChoice(4, "assumed 6-11 GB: the guide gives 4 at 6 GB; pass --vram to choose", False)
    if vram_gb >= 12:
        return BatchChoice(6, f"{vram_gb:g} GB: the guide gives 6 at 12 GB, 512 px", False)
    if vram_gb >= 6:
        return BatchChoice(4, f"{vram_gb:g} GB: the guide gives 4 at 6 GB, 512 px", False)
    return BatchChoice(
        1, f"{vram_gb:g} GB: below the guide's table; batch 1 with gradient checkpointing (our choice)", True
    )


@dataclass(frozen=True)
class Machine:
    """What `init` could tell, cheaply, of the machine that trains (trainer.needs.guess_machine): a CUDA
    GPU or not, bf16 and a working bitsandbytes (None: not known), and how it knows."""

    cuda: bool
    bf16: bool | None = None
    eight_bit: bool | None = None
    why: str = ""


def _hardware(machine: Machine | None) -> dict[str, str]:
    """The optimizer and mixed precision lines: the GUI's AdamW8bit and bf16 on a CUDA GPU, AdamW and no
    mixed precision without one (bitsandbytes' 8-bit optimizers and bf16 autocast want CUDA)."""
    if machine is not None and not machine.cuda:
        return {
            "optimizer": "AdamW",
            "optimizer_why": f"AdamW: {machine.why}. On a CUDA GPU use AdamW8bit (the Kohya GUI's default, "
            "needs bitsandbytes), which saves memory.",
            "mixed_precision": '"no"',
            "precision_why": "no: without CUDA the trainer runs on the CPU (slowly). On a CUDA GPU use bf16 "
            "(RTX 30xx and newer) or fp16.",
        }
    optimizer = "AdamW8bit"
    optimizer_why = "AdamW8bit (the Kohya GUI's default) needs bitsandbytes, which kohya_ss installs; else use AdamW."
    if machine is not None and machine.eight_bit is False:
        optimizer = "AdamW"
        optimizer_why = (
            f"AdamW: bitsandbytes does not import in the trainer's Python ({machine.why}); once it does, "
            "AdamW8bit (the Kohya GUI's default) saves memory."
        )
    precision, precision_why = "bf16", "bf16 on RTX 30xx and newer; use fp16 on older cards."
    if machine is not None and machine.bf16 is False:
        precision, precision_why = "fp16", f"fp16: this GPU has no bf16 ({machine.why})."
    return {
        "optimizer": optimizer,
        "optimizer_why": optimizer_why,
        "mixed_precision": precision,
        "precision_why": precision_why,
    }


def render_preset(preset_name: str, name: str, vram_gb: float | None, machine: Machine | None = None) -> str:
    from .yamlpos import parse_scalar

    preset = PRESETS[preset_name]
    # `--name 2024` or `--name true` would read back as a number or a boolean; quote those.
    name_yaml = name if parse_scalar(name) == name else json.dumps(name)
    batch = batch_for_vram(vram_gb)
    template = resources.files("artlab_kohya").joinpath("spec/templates/spec.yaml.in").read_text(encoding="utf-8")
    return template.format(
        title=preset.title,
        preset=preset_name,
        vram_flag=f" --vram {vram_gb:g}" if vram_gb is not None else "",
        clip_skip=preset.clip_skip,
        clip_skip_why=preset.clip_skip_why,
        batch_size=batch.size,
        batch_why=batch.why,
        repeats=preset.repeats,
        repeats_why=preset.repeats_why,
        name=name,
        name_yaml=name_yaml,
        shuffle="true" if preset.shuffle else "false",
        keep_tokens=preset.keep_tokens,
        gradient_checkpointing="true" if batch.checkpointing else "false",
        **_hardware(machine),
    )


# `init --family`: the larger families' community settings, in two tiers of GPU memory. Each template says
# where its numbers come from: sd-scripts' own guides at the pinned commit (docs/sdxl_train_network.md,
# docs/flux_train_network.md and its VRAM table, docs/sd3_train_network.md), and for 80 GB and more
# our measurement on an H200 (BENCHMARKS.md) or our choice, said as such.
FAMILY_FAMILIES = ("sd15", "sdxl", "flux1", "sd3")
LARGE_VRAM_GB = 80


@dataclass(frozen=True)
class Tier:
    batch_size: int
    fp8_base: bool
    blocks_to_swap: int | None
    gradient_checkpointing: bool
    source: str


TIERS: dict[str, tuple[Tier, Tier]] = {
    "sdxl": (
        Tier(2, False, None, True, "sd-scripts' docs/sdxl_train_network.md (gradient checkpointing, cached text "
             "encoders); batch 2 is our choice for 24 GB"),
        Tier(4, False, None, False, "batch 4 without checkpointing peaked at 41,656 MiB on an H200 (BENCHMARKS.md)"),
    ),
    "flux1": (
        Tier(2, True, None, True, "sd-scripts' docs/flux_train_network.md, VRAM table: 24GB, fp8_base, batch 2"),
        Tier(4, False, None, True, "our choice for 80 GB and more: bf16 base, batch 4 (not measured here)"),
    ),
    "sd3": (
        Tier(1, False, 32, True, "sd-scripts' docs/sd3_train_network.md example (blocks_to_swap 32, batch 1)"),
        Tier(4, False, None, True, "our choice for 80 GB and more: no block swap, batch 4 (not measured here)"),
    ),
}  # fmt: skip


def render_family_preset(family: str, preset_name: str, name: str, vram_gb: float | None) -> str:
    """A FLUX.1, SD3 or SDXL spec: the 24 GB tier unless --vram says 80 GB or more."""
    from .yamlpos import parse_scalar

    preset = PRESETS[preset_name]
    large = vram_gb is not None and vram_gb >= LARGE_VRAM_GB
    tier = TIERS[family][1 if large else 0]
    label = f"{LARGE_VRAM_GB}+ GB of GPU memory" if large else "24 GB of GPU memory (and up to 80)"
    template = resources.files("artlab_kohya").joinpath(f"spec/templates/spec-{family}.yaml.in").read_text("utf-8")
    swap = f"  blocks_to_swap: {tier.blocks_to_swap}" if tier.blocks_to_swap else ""
    return template.format(
        title=preset.title,
        preset=preset_name,
        vram_flag=f" --vram {vram_gb:g}" if vram_gb is not None else "",
        tier=label,
        tier_source=tier.source,
        batch_size=tier.batch_size,
        fp8_base="true" if tier.fp8_base else "false",
        blocks_to_swap=swap,
        gradient_checkpointing="true" if tier.gradient_checkpointing else "false",
        repeats=preset.repeats,
        repeats_why=preset.repeats_why,
        name=name,
        name_yaml=name if parse_scalar(name) == name else json.dumps(name),
    )


def init_project(
    folder: Path,
    preset_name: str,
    vram_gb: float | None,
    name: str | None = None,
    machine: Machine | None = None,
    family: str = "sd15",
) -> list[Path]:
    """Write FOLDER/spec.yaml and FOLDER/img/N_name/; never overwrite an existing spec.

    The name becomes output.name, the class tokens and a folder name, so it must be one file name part
    (ValueError otherwise): `--name ../../x` would write outside FOLDER.
    """
    from .model import name_problem

    name = name or _name_from(folder)
    problem = name_problem(name)
    if problem:
        raise ValueError(f"--name {name!r} {problem}")
    spec_path = folder / "spec.yaml"
    if spec_path.exists():
        raise FileExistsError(f"{spec_path} exists already; init never overwrites a spec")
    images = folder / "img" / f"{PRESETS[preset_name].repeats}_{name}"
    images.mkdir(parents=True, exist_ok=True)
    readme = images / "PUT_IMAGES_HERE.md"
    if not readme.exists():
        readme.write_text(
            f"Put about 30 images here (at least 10), 512-768 px, one consistent style, each with a\n"
            f"same-name caption file: photo01.png + photo01.txt. Captions start with the trigger word '{name}'.\n"
            f"The folder name {images.name} means {PRESETS[preset_name].repeats} repeats per image.\n",
            encoding="utf-8",
        )
    text = (
        render_preset(preset_name, name, vram_gb, machine)
        if family == "sd15"
        else render_family_preset(family, preset_name, name, vram_gb)  # GPU families: the machine is assumed
    )
    spec_path.write_text(text, encoding="utf-8")
    return [spec_path, images]


def _name_from(folder: Path) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in folder.resolve().name).strip("_").lower()
    return stem[:64] or "subject"
