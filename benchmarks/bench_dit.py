"""What bench_flux.py and bench_sd3.py share: a LoRA on a diffusion transformer of several files through
`artlab-kohya run` on a GPU, steady images/s and peak GPU memory.

Builds the family's full-size random-initialised files once with sd-scripts' own model code (a
trainer/inside/build_*_random.py script; a toy T5 tokenizer goes beside the CLIP ones), then runs each
case as the whole CLI on 16 flat-colour square images x 10 repeats, batch 2, 30 steps, LoRA dim 16 on
the transformer, bf16 weights, latents and text-encoder outputs cached, the spec's defaults for the
family's own section:
- CASE_gc: with gradient checkpointing;
- CASE: without;
- CASE_swap: CASE with training.blocks_to_swap SWAP (the transformer's blocks moved between the card
  and the CPU as sd-scripts' block swap does);
- CASE_locon: CASE with a LyCORIS locon (lycoris.kohya) instead of the family's LoRA module.
A case starts only while --deadline seconds (from the start of the script) are not yet spent.
Measured as in bench_sdxl.py (whose helpers it uses): steady images/s over the second half of the
steps, the card's peak used memory (NVML), plan's total against the trainer's, the saved LoRA against
models/netsize's prediction. Writes OUT/results.json and OUT/CASE.tgz per case.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_sdxl as common  # noqa: E402 - the helpers of the SDXL benchmark

BATCH = 2
STEPS = 30
DIM = 16
SWAP = 8


@dataclass(frozen=True)
class Family:
    """One family's benchmark: its builder, its files (spec key -> file the builder writes), its size."""

    family: str  # model.family, and netsize's family
    builder: str  # trainer/inside/build_*_random.py
    files: dict[str, str]  # model.source first
    resolution: int
    variants: tuple[str, ...]  # the builder's size argument: the first is the default
    case: str  # the case without gradient checkpointing; CASE_gc is the one with it


FLUX = Family(
    family="flux1",
    builder="build_flux_random.py",
    files={
        "flux1": "flux1_random.safetensors",
        "ae": "ae_random.safetensors",
        "clip_l": "clip_l_random.safetensors",
        "t5xxl": "t5xxl_random.safetensors",
    },
    resolution=512,
    variants=("19,38",),  # double and single blocks
    case="flux",
)
SD3 = Family(
    family="sd3",
    builder="build_sd3_random.py",
    files={
        "sd3": "sd3_random.safetensors",
        "clip_l": "clip_l_random.safetensors",
        "clip_g": "clip_g_random.safetensors",
        "t5xxl": "t5xxl_random.safetensors",
    },
    resolution=1024,
    variants=("sd3.5-large", "sd3-medium", "sd3.5-medium"),
    case="sd3",
)


def spec_text(fam: Family, files: dict[str, Path], images: Path, sd: Path, case: str) -> str:
    source, *others = fam.files
    return common.bench_spec(
        {"source": str(files[source]), "family": fam.family, **{key: str(files[key]) for key in others}},
        images,
        sd,
        case,
        dataset={"resolution": fam.resolution, "batch_size": BATCH, "buckets": {"enabled": False}},
        network={"type": "locon" if case.endswith("_locon") else "lora", "dim": DIM, "alpha": DIM, "train": "unet"},
        training={
            "epochs": None,
            "max_steps": STEPS,
            "save_every_n_epochs": None,
            "save_precision": "fp16",
            "cache_text_encoder_outputs": "memory",
            "gradient_checkpointing": case.endswith("_gc"),
            "blocks_to_swap": SWAP if case.endswith("_swap") else None,
            "stop_on_nan": False,
        },
    )


def build(fam: Family, variant: str, work: Path, sd: Path, tokenizers: Path) -> tuple[dict[str, Path], dict]:
    from artlab_kohya.trainer.install import Install, run_engine_script

    out = work / "models"
    files = {key: out / name for key, name in fam.files.items()}
    started = time.time()
    info = run_engine_script(
        Install(sd, sys.executable),
        fam.builder,
        [str(sd), str(out), "0", variant, str(tokenizers)],
        timeout=900,
        what="build",
    )
    if "error" in info:
        raise SystemExit(f"build failed: {info}")
    info["wall_s"] = round(time.time() - started, 1)
    print(f"model built: {info}", flush=True)
    return files, info


def main(fam: Family, doc: str) -> None:
    started = time.time()
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--sd-scripts", type=Path, required=True)
    parser.add_argument("--tokenizers", type=Path, required=True, help="CLIP tokenizer folders (T5's is added)")
    parser.add_argument("--work", type=Path, default=Path(f"/tmp/artlab-{fam.family}"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variant", default=fam.variants[0], choices=fam.variants, help="the model's size")
    parser.add_argument("--cases", nargs="+", default=[f"{fam.case}_gc", fam.case])
    parser.add_argument("--timeout", type=float, default=300, help="seconds per case")
    parser.add_argument("--deadline", type=float, default=560, help="start no case after this many seconds")
    parser.add_argument("--min-case", type=float, default=150, help="seconds a case needs to be started")
    args = parser.parse_args()
    sd, work = args.sd_scripts.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizers = work / "tokenizers"  # the CLIP folders copied, the toy T5 one written beside them
    if not tokenizers.exists():
        shutil.copytree(args.tokenizers.resolve(), tokenizers)
    report: dict = {"python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d"), "cases": []}
    files, report["build"] = build(fam, args.variant, work, sd, tokenizers)
    common.BATCH, common.STEPS = BATCH, STEPS
    common.write_images(work / "img", [(fam.resolution, fam.resolution)] * 16)
    for case in args.cases:
        left = args.deadline - (time.time() - started)
        if left < args.min_case:
            report["cases"].append({"case": case, "skipped": f"{left:.0f} s left before the deadline"})
            continue
        timeout = min(args.timeout, left)
        common.run_and_report(
            case,
            lambda c, t=timeout: run_case(fam, args.variant, c, files, sd, tokenizers, work, args.out, t),
            report,
            args.out,
        )
    (args.out / "results.json").write_text(json.dumps(report, indent=1))


def run_case(fam: Family, variant: str, case: str, files: dict[str, Path], sd: Path, tokenizers: Path, work: Path,
             out: Path, timeout: float) -> dict:  # fmt: skip
    """bench_sdxl's run_case with this family's spec and a LoRA check against its netsize prediction."""
    from artlab_kohya.models.checkpoint import read_safetensors_header
    from artlab_kohya.models.netsize import predict

    original_spec, original_check = common.spec_text, common.check_lora
    sized = {"variant": variant} if fam.family == "sd3" else {}

    def check(path: Path) -> dict:
        result = original_check(path)
        meta = len(json.dumps(read_safetensors_header(path).get("__metadata__", {}), separators=(",", ":")))
        kind = "locon" if case.endswith("_locon") else "lora"
        size = predict(fam.family, kind, dim=DIM, train_text_encoder=False, save_dtype="fp16", metadata_bytes=meta,
                       **sized)  # fmt: skip
        result["predicted"] = {"tensors": size.tensors, "params": size.params, "bytes": size.bytes}
        return result

    common.spec_text = lambda model, images, sd_, case_: spec_text(fam, files, work / "img", sd, case_)
    common.check_lora = check
    try:
        return common.run_case(case, next(iter(files.values())), sd, tokenizers, work, out, timeout)
    finally:
        common.spec_text, common.check_lora = original_spec, original_check
