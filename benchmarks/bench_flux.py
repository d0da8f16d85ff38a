"""FLUX.1 LoRA training through `artlab-kohya run` on a GPU: steady images/s and peak GPU memory.

    python benchmarks/bench_flux.py --sd-scripts DIR --tokenizers DIR --work /tmp/flux --out OUT \\
        --cases flux_gc flux --deadline 560

Builds full-size random-initialised FLUX.1 dev files once with sd-scripts' own model code
(trainer/inside/build_flux_random.py: the 11.9e9-parameter transformer, its autoencoder, CLIP-L and
T5-XXL, and a toy T5 tokenizer beside the CLIP ones), then runs each case as the whole CLI on 16
flat-colour 512x512 images x 10 repeats, batch 2, 30 steps, LoRA dim 16 on the transformer
(networks.lora_flux), bf16 weights, latents and text-encoder outputs cached, sd-scripts' recommended
flow settings (the spec's flux: defaults):
- flux_gc: with gradient checkpointing;
- flux: without.
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
  source: {files["flux1"]}
  family: flux1
  ae: {files["ae"]}
  clip_l: {files["clip_l"]}
  t5xxl: {files["t5xxl"]}
dataset:
  resolution: 512
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
  gradient_checkpointing: {"true" if case == "flux_gc" else "false"}
  stop_on_nan: false
output:
  name: {case}
  log_with: none
kohya:
  dir: {sd}
  python: {sys.executable}
"""


def build(work: Path, sd: Path, tokenizers: Path) -> tuple[dict[str, Path], dict]:
    from artlab_kohya.trainer.install import Install, run_engine_script

    out = work / "models"
    names = {"flux1": "flux1_random", "ae": "ae_random", "clip_l": "clip_l_random", "t5xxl": "t5xxl_random"}
    files = {k: out / f"{v}.safetensors" for k, v in names.items()}
    started = time.time()
    info = run_engine_script(
        Install(sd, sys.executable),
        "build_flux_random.py",
        [str(sd), str(out), "0", "19,38", str(tokenizers)],
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
    parser.add_argument("--work", type=Path, default=Path("/tmp/artlab-flux"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", default=["flux_gc", "flux"])
    parser.add_argument("--timeout", type=float, default=300, help="seconds per case")
    parser.add_argument("--deadline", type=float, default=560, help="start no case after this many seconds")
    parser.add_argument("--min-case", type=float, default=150, help="seconds a case needs to be started")
    args = parser.parse_args()
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
    common.write_images(work / "img", [(512, 512)] * 16)
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
    """bench_sdxl's run_case with this spec and a FLUX.1 LoRA check."""
    from artlab_kohya.models.netsize import predict

    original_spec, original_check = common.spec_text, common.check_lora

    def check(path: Path) -> dict:
        result = original_check(path)
        meta = len(json.dumps(_metadata(path), separators=(",", ":")))
        size = predict("flux1", "lora", dim=DIM, train_text_encoder=False, save_dtype="fp16", metadata_bytes=meta)
        result["predicted"] = {"tensors": size.tensors, "params": size.params, "bytes": size.bytes}
        return result

    common.spec_text = lambda model, images, sd_, case_: spec_text(files, work / "img", sd, case_)
    common.check_lora = check
    try:
        return common.run_case(case, files["flux1"], sd, tokenizers, work, out, timeout)
    finally:
        common.spec_text, common.check_lora = original_spec, original_check


def _metadata(path: Path) -> dict:
    from artlab_kohya.models.checkpoint import read_safetensors_header

    return read_safetensors_header(path).get("__metadata__", {})


if __name__ == "__main__":
    main()
