"""SDXL LoRA training through `artlab-kohya run` on a GPU: steady images/s and peak GPU memory.

    python benchmarks/bench_sdxl.py --sd-scripts DIR --tokenizers DIR --work /tmp/sdxl --out OUT \\
        --cases te_cache buckets te_live gc

Builds a random-initialised SDXL checkpoint once with sd-scripts' own model code
(trainer/inside/build_sdxl_random.py), writes a dataset of flat-colour PNGs, then runs each case as the
whole CLI (`python -m artlab_kohya run SPEC --plain`), one after another on the same card:
- te_cache: 1024 px, batch 4, LoRA dim 32 on the U-Net, bf16, SDPA, latents cached in memory,
  text-encoder outputs cached;
- te_live: the same with the text encoders run every step (cache off);
- gc: te_cache with gradient checkpointing;
- buckets: te_cache on images of four aspect ratios with buckets on, trained for 2 epochs (so the
  trainer's step total can be held against `plan`'s);
- vpred (with --prediction v: the model's metadata says modelspec.prediction_type v): te_cache with
  family auto, zero_terminal_snr and scale_v_pred_loss_like_noise_pred, so the family must come out
  as sdxl-v and the trainer must train with v_parameterization.
Measured per case: steady steps/s over the second half of the steps (times from the run's
events.jsonl) times the batch size; the peak of the card's used memory (NVML, polled every 0.1 s,
the whole card: CUDA context and the allocator's cache included) above what was in use before the
run; the trainer's "total optimization steps" against plan's; the saved LoRA read back (header,
ss_* metadata, tensors against models/netsize's prediction, loaded with safetensors).
Writes OUT/results.json and, per case, OUT/CASE.tgz with the run folder's logs and records.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH = 4
STEPS = 50
ASPECTS = ((1024, 1024), (1216, 832), (832, 1216), (1344, 768))


def bench_spec(
    model: dict[str, Any],
    images: Path,
    sd: Path,
    name: str,
    *,
    dataset: dict[str, Any],
    network: dict[str, Any],
    training: dict[str, Any],
    repeats: int = 10,
) -> str:
    """A benchmark's spec as YAML: its model, dataset, network and training tables over what every
    benchmark shares (one subset of `images`, class token "bench", bf16, latents cached in memory, SDPA,
    no logging, the install at `sd` run by this Python)."""
    import yaml

    spec = {
        "model": model,
        "dataset": {**dataset, "subsets": [{"path": str(images), "repeats": repeats, "class_tokens": "bench"}]},
        "network": {"type": "lora", **network},
        "training": {"mixed_precision": "bf16", "cache_latents": "memory", "attention": "sdpa", **training},
        "output": {"name": name, "log_with": "none"},
        "kohya": {"dir": str(sd), "python": sys.executable},
    }
    return yaml.safe_dump(spec, sort_keys=False)


def spec_text(model: Path, images: Path, sd: Path, case: str) -> str:
    buckets = case == "buckets"
    bucketing = {"enabled": True, "min_resolution": 512, "max_resolution": 2048, "step": 64} if buckets else {}
    return bench_spec(
        {"source": str(model), "family": "auto" if case == "vpred" else "sdxl"},
        images,
        sd,
        case,
        dataset={"resolution": 1024, "batch_size": BATCH, "buckets": bucketing or {"enabled": False}},
        network={"dim": 32, "alpha": 16, "train": "unet"},
        training={
            "epochs": 2 if buckets else None,
            "max_steps": None if buckets else STEPS,
            "save_every_n_epochs": 1 if buckets else None,
            "gradient_checkpointing": case == "gc",
            "cache_text_encoder_outputs": "off" if case == "te_live" else "memory",
            "zero_terminal_snr": case == "vpred",
            "scale_v_pred_loss_like_noise_pred": case == "vpred",
        },
        repeats=2 if buckets else 10,
    )


def cli_env(tokenizers: Path, work: Path) -> dict[str, str]:
    """The environment a benchmark runs `python -m artlab_kohya` in: the local tokenizer folders, no hub,
    artlab-kohya's cache in `work`, this checkout importable."""
    return {
        **os.environ,
        "ARTLAB_KOHYA_TOKENIZERS": str(tokenizers),
        "ARTLAB_KOHYA_CACHE": str(work / "cache"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def build_model(work: Path, sd: Path, prediction: str | None = None) -> tuple[Path, dict]:
    from artlab_kohya.trainer.install import Install, run_engine_script

    model = work / f"sdxl_random{'_' + prediction if prediction else ''}_fp16.safetensors"
    if model.exists():
        return model, {"reused": True}
    tmp = work / "building.tmp.safetensors"
    t = time.time()
    info = run_engine_script(
        Install(sd, sys.executable),
        "build_sdxl_random.py",
        [str(sd), str(tmp), "0", *([prediction] if prediction else [])],
        timeout=900,
        what="build",
    )
    if "error" in info:
        raise SystemExit(f"build failed: {info}")
    tmp.rename(model)
    info["wall_s"] = round(time.time() - t, 1)
    info["bytes"] = model.stat().st_size
    print(f"model built: {info}", flush=True)
    return model, info


def write_images(folder: Path, sizes: list[tuple[int, int]]) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        Image.new("RGB", (w, h), (i * 37 % 256, 120, 200 - i * 5 % 200)).save(folder / f"{i:03d}.png")
        (folder / f"{i:03d}.txt").write_text("bench, a colour field\n")


class MemoryPeak:
    """The card's used memory, polled in a thread through NVML (no CUDA context in this process)."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.base = self.used()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def used(self) -> int:
        return int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.used())
            time.sleep(0.1)

    def __enter__(self) -> MemoryPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def steady(points: list[tuple[float, int]], total: int) -> float | None:
    """Steps per second over the second half of the steps."""
    by_step: dict[int, float] = {}
    for t, step in points:
        by_step.setdefault(step, t)
    start = next((s for s in sorted(by_step) if s >= max(1, total // 2)), None)
    end = max(by_step) if by_step else None
    if start is None or end is None or end <= start:
        return None
    return (end - start) / (by_step[end] - by_step[start])


def check_lora(path: Path) -> dict:
    from safetensors.torch import load_file

    from artlab_kohya.models.checkpoint import read_safetensors_header
    from artlab_kohya.models.netsize import predict

    header = read_safetensors_header(path)
    meta = header.get("__metadata__", {})
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    params = 0
    for v in tensors.values():
        n = 1
        for s in v["shape"]:
            n *= s
        params += n
    loaded = load_file(str(path))
    predicted = predict("sdxl", "lora", dim=32, train_text_encoder=False, save_dtype="fp16",
                        metadata_bytes=len(json.dumps(meta, separators=(",", ":"))))  # fmt: skip
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "tensors": len(tensors),
        "params": params,
        "loaded_tensors": len(loaded),
        "predicted": {"tensors": predicted.tensors, "params": predicted.params, "bytes": predicted.bytes},
        "metadata": {
            k: meta.get(k)
            for k in (
                "ss_base_model_version",
                "modelspec.architecture",
                "modelspec.prediction_type",
                "modelspec.resolution",
                "ss_network_module",
                "ss_network_dim",
                "ss_network_alpha",
                "ss_resolution",
                "ss_zero_terminal_snr",
                "ss_num_train_images",
                "ss_steps",
                "ss_epoch",
                "ss_mixed_precision",
            )
        },  # fmt: skip
    }


def run_case(case: str, model: Path, sd: Path, tokenizers: Path, work: Path, out: Path, timeout: float) -> dict:
    from artlab_kohya.build.plan import make_plan
    from artlab_kohya.spec import load_spec

    images = work / ("img_aspects" if case == "buckets" else "img_square")
    spec = work / f"spec-{case}.yaml"
    spec.write_text(spec_text(model, images, sd, case))
    plan = make_plan(load_spec(spec))
    runs = work / "runs"
    argv = [sys.executable, "-m", "artlab_kohya", "run", str(spec), "--plain", "--runs-dir", str(runs)]
    env = cli_env(tokenizers, work)
    display = work / f"display-{case}.log"
    result: dict = {"case": case, "plan_total_steps": plan.total_steps, "plan_lora_bytes": plan.lora_bytes}
    started = time.time()
    with MemoryPeak() as memory, display.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            result["rc"] = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            result["rc"] = "timeout"
    result["wall_s"] = round(time.time() - started, 1)
    result["gpu_memory_before_mib"] = round(memory.base / 2**20)
    result["gpu_memory_peak_mib"] = round(memory.peak / 2**20)
    text = display.read_text(errors="replace")
    result["display_tail"] = text[-1500:]
    match = re.search(r"run folder: (\S+)", text)
    folders = sorted(runs.glob("*/*"), key=lambda p: p.stat().st_mtime) if runs.exists() else []
    folder = Path(match.group(1)) if match else (folders[-1] if folders else None)
    if folder is None or not folder.is_dir():
        return result
    record = json.loads((folder / "result.json").read_text())
    result["status"] = record.get("status")
    result["diagnosis"] = record.get("diagnosis")
    result["prelaunch_s"] = round(record.get("launched_at_unix", started) - started, 2)
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines() if line.strip()]
    points = [(e["t"], e["step"]) for e in events if e.get("type") == "Step"]
    total = plan.total_steps
    rate = steady(points, total)
    result["steady_it_s"] = round(rate, 3) if rate else None
    result["steady_images_s"] = round(rate * BATCH, 2) if rate else None
    result["first_step_t"] = points[0][0] if points else None
    stdout = (folder / "stdout.log").read_text(errors="replace")
    trainer_total = re.search(r"total optimization steps / 学習ステップ数: (\d+)", stdout)
    result["trainer_total_steps"] = int(trainer_total.group(1)) if trainer_total else None
    lock = (folder / "spec.lock.yaml").read_text()
    result["locked_family"] = next((ln.split(":", 1)[1].strip() for ln in lock.splitlines()
                                    if ln.strip().startswith("family:")), None)  # fmt: skip
    config = (folder / "config.toml").read_text()
    result["v_parameterization"] = "v_parameterization = true" in config
    result["zero_snr_warning"] = "v_parameterization is not enabled" in (folder / "stderr.log").read_text()
    try:
        result["loras"] = [check_lora(p) for p in sorted(folder.rglob("*.safetensors"))]
    except Exception as exc:  # noqa: BLE001 - recorded, and the logs below still kept
        result["loras_error"] = f"{type(exc).__name__}: {exc}"
    with tarfile.open(out / f"{case}.tgz", "w:gz") as tar:
        for name in ("stdout.log", "stderr.log", "events.jsonl", "result.json", "spec.lock.yaml", "config.toml",
                     "dataset.toml"):  # fmt: skip
            if (folder / name).exists():
                tar.add(folder / name, arcname=f"{case}/{name}")
        tar.add(display, arcname=f"{case}/display.log")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sd-scripts", type=Path, required=True)
    parser.add_argument("--tokenizers", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/artlab-sdxl"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", default=["te_cache", "buckets", "te_live", "gc"])
    parser.add_argument("--timeout", type=float, default=240, help="seconds per case")
    parser.add_argument("--prediction", choices=["epsilon", "v"], help="written into the model's metadata")
    args = parser.parse_args()
    sd, tokenizers, work = args.sd_scripts.resolve(), args.tokenizers.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d"), "cases": []}
    model, report["build"] = build_model(work, sd, args.prediction)
    write_images(work / "img_square", [(1024, 1024)] * 16)
    write_images(work / "img_aspects", [ASPECTS[i % 4] for i in range(24)])
    for case in args.cases:
        run_and_report(
            case, lambda c: run_case(c, model, sd, tokenizers, work, args.out, args.timeout), report, args.out
        )


def run_and_report(case: str, run: Callable[[str], dict], report: dict, out: Path) -> None:
    """Run one case (a failure becomes its result, and the next case still runs); print its numbers and
    rewrite OUT/results.json, so a call cut short keeps what it measured."""
    try:
        result = run(case)
    except Exception as exc:  # noqa: BLE001 - the next case still runs
        result = {"case": case, "error": f"{type(exc).__name__}: {exc}"}
    shown = {k: result.get(k) for k in ("rc", "status", "steady_images_s", "gpu_memory_peak_mib", "wall_s")}
    print(f"{case}: {shown}", flush=True)
    report["cases"].append(result)
    (out / "results.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
