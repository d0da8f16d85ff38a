"""SD3 LoRA training through `artlab-kohya run` on a GPU: steady images/s and peak GPU memory.

    python benchmarks/bench_sd3.py --sd-scripts DIR --tokenizers DIR --work /tmp/sd3 --out OUT \\
        --variant sd3.5-large --cases sd3_gc sd3 --deadline 540

Builds full-size random-initialised SD3 files once with sd-scripts' own model code
(trainer/inside/build_sd3_random.py: the MMDiT of the variant with its VAE, CLIP-L, CLIP-G and T5-XXL,
and a toy T5 tokenizer beside the CLIP ones), then runs each case as the whole CLI on 16 flat-colour
1024x1024 images x 10 repeats, batch 2, 30 steps, LoRA dim 16 on the transformer (networks.lora_sd3),
bf16 weights, latents and text-encoder outputs cached, the spec's sd3: defaults:
- sd3_gc: with gradient checkpointing;
- sd3: without.
A case starts only while --deadline seconds (from the start of this script) are not yet spent.
Measured as in bench_sdxl.py (whose helpers it uses): steady images/s over the second half of the
steps, the card's peak used memory (NVML), plan's total against the trainer's, the saved LoRA against
models/netsize's prediction. Writes OUT/results.json and OUT/CASE.tgz per case.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_sdxl as common  # noqa: E402 - the helpers of the SDXL benchmark

BATCH = 2
STEPS = 30
DIM = 16


def spec_text(files: dict[str, Path], images: Path, sd: Path, case: str) -> str:
    return f"""\
model:
  source: {files["sd3"]}
  family: sd3
  clip_l: {files["clip_l"]}
  clip_g: {files["clip_g"]}
  t5xxl: {files["t5xxl"]}
dataset:
  resolution: 1024
  batch_size: {BATCH}
  buckets:
    enabled: false
  subsets:
    - path: {images}
      repeats: 10
      class_tokens: bench
network:
  type: lora
  dim: {DIM}
  alpha: {DIM}
  train: unet
training:
  epochs: null
  max_steps: {STEPS}
  save_every_n_epochs: null
  mixed_precision: bf16
  save_precision: fp16
  cache_latents: memory
  cache_text_encoder_outputs: memory
  attention: sdpa
  gradient_checkpointing: {"true" if case == "sd3_gc" else "false"}
  stop_on_nan: false
output:
  name: {case}
  log_with: none
kohya:
  dir: {sd}
  python: {sys.executable}
"""


VARIANT = "sd3.5-large"


def build(work: Path, sd: Path, tokenizers: Path) -> tuple[dict[str, Path], dict]:
    from artlab_kohya.trainer.install import Install, run_engine_script

    out = work / "models"
    names = {"sd3": "sd3_random", "clip_l": "clip_l_random", "clip_g": "clip_g_random", "t5xxl": "t5xxl_random"}
    files = {k: out / f"{v}.safetensors" for k, v in names.items()}
    started = time.time()
    info = run_engine_script(
        Install(sd, sys.executable),
        "build_sd3_random.py",
        [str(sd), str(out), "0", VARIANT, str(tokenizers)],
        timeout=900,
        what="build",
    )
    if "error" in info:
        raise SystemExit(f"build failed: {info}")
    info["wall_s"] = round(time.time() - started, 1)
    print(f"model built: {info}", flush=True)
    return files, info


def main() -> None:
    started = time.time()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sd-scripts", type=Path, required=True)
    parser.add_argument("--tokenizers", type=Path, required=True, help="CLIP tokenizer folders (T5's is added)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/artlab-sd3"))
    parser.add_argument("--variant", default="sd3.5-large", choices=["sd3-medium", "sd3.5-medium", "sd3.5-large"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", default=["sd3_gc", "sd3"])
    parser.add_argument("--timeout", type=float, default=300, help="seconds per case")
    parser.add_argument("--deadline", type=float, default=560, help="start no case after this many seconds")
    parser.add_argument("--min-case", type=float, default=150, help="seconds a case needs to be started")
    args = parser.parse_args()
    global VARIANT
    VARIANT = args.variant
    sd, work = args.sd_scripts.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizers = work / "tokenizers"  # the CLIP folders copied, the toy T5 one written beside them
    if not tokenizers.exists():
        import shutil

        shutil.copytree(args.tokenizers.resolve(), tokenizers)
    report: dict = {"python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d"), "cases": []}
    files, report["build"] = build(work, sd, tokenizers)
    common.BATCH, common.STEPS = BATCH, STEPS
    common.write_images(work / "img", [(1024, 1024)] * 16)
    for case in args.cases:
        left = args.deadline - (time.time() - started)
        if left < args.min_case:
            report["cases"].append({"case": case, "skipped": f"{left:.0f} s left before the deadline"})
            continue
        try:
            result = run_case(case, files, sd, tokenizers, work, args.out, min(args.timeout, left))
        except Exception as exc:  # noqa: BLE001 - the next case still runs
            result = {"case": case, "error": f"{type(exc).__name__}: {exc}"}
        shown = {k: result.get(k) for k in ("rc", "status", "steady_images_s", "gpu_memory_peak_mib", "wall_s")}
        print(f"{case}: {shown}", flush=True)
        report["cases"].append(result)
        (args.out / "results.json").write_text(json.dumps(report, indent=1))
    (args.out / "results.json").write_text(json.dumps(report, indent=1))


def run_case(case: str, files: dict[str, Path], sd: Path, tokenizers: Path, work: Path, out: Path, timeout: float):
    """bench_sdxl's run_case with this spec and an SD3 LoRA check."""
    from artlab_kohya.models.netsize import predict

    original_spec, original_check = common.spec_text, common.check_lora

    def check(path: Path) -> dict:
        result = original_check(path)
        meta = len(json.dumps(_metadata(path), separators=(",", ":")))
        size = predict("sd3", "lora", dim=DIM, train_text_encoder=False, save_dtype="fp16", metadata_bytes=meta,
                       variant=VARIANT)  # fmt: skip
        result["predicted"] = {"tensors": size.tensors, "params": size.params, "bytes": size.bytes}
        return result

    common.spec_text = lambda model, images, sd_, case_: spec_text(files, work / "img", sd, case_)
    common.check_lora = check
    try:
        return common.run_case(case, files["sd3"], sd, tokenizers, work, out, timeout)
    finally:
        common.spec_text, common.check_lora = original_spec, original_check


def _metadata(path: Path) -> dict:
    from artlab_kohya.models.checkpoint import read_safetensors_header

    return read_safetensors_header(path).get("__metadata__", {})


if __name__ == "__main__":
    main()
