"""GPU overhead of the wrapper: raw `accelerate launch train_network.py` against `artlab-kohya run`.

    python benchmarks/bench_gpu.py --sd-scripts DIR --tokenizers DIR --work /tmp/bench \\
        --batch 8 --steps 150 --rounds 1 --out result.json

Both start from the same spec rendered by the same code (only output paths differ) on the same
random-initialised SD1.5 checkpoint (built once with sd-scripts' own code) at 512 px, bf16, SDPA,
cached latents, LoRA dim 32. Raw is the argv a user would type (the same accelerate values), its
output read from pipes by this script; `run` is the whole CLI, spec to result.json. Measured:
- time to the first step: from starting the command to the first training step being seen
  (raw: the tqdm frame for step 1 on the pipe; run: its "step 1/" progress line);
- steady it/s: steps per second over the second half of the steps (raw: frame arrival times on
  the pipe; run: the times in its events.jsonl);
- for run, also the time from starting the command to starting the trainer (its result.json).
Rounds alternate raw, run, raw, run ... after one short untimed warm-up run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FRAME = re.compile(r"steps:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")


RESOLUTION = 512


def spec_text(model: Path, images: Path, sd: Path, batch: int, steps: int) -> str:
    from bench_sdxl import bench_spec

    return bench_spec(
        {"source": str(model), "family": "sd15"},
        images,
        sd,
        "bench",
        dataset={"resolution": RESOLUTION, "batch_size": batch, "buckets": {"enabled": False}},
        network={"dim": 32, "alpha": 16},
        training={"epochs": None, "max_steps": steps, "save_every_n_epochs": None},
    )


def setup(work: Path, sd: Path) -> tuple[Path, Path]:
    from PIL import Image

    from artlab_kohya.trainer.install import Install, run_engine_script

    work.mkdir(parents=True, exist_ok=True)
    model = work / "sd15_random_fp16.safetensors"
    if not model.exists() and "--model" not in sys.argv:
        t = time.time()
        tmp = work / "building.tmp.safetensors"
        run_engine_script(
            Install(sd, sys.executable), "build_sd15_random.py", [str(sd), str(tmp), "0"], timeout=1200, what="build"
        )
        tmp.rename(model)
        print(f"model built in {time.time() - t:.0f} s", flush=True)
    images = work / "img" / "10_bench"
    if not images.exists():
        images.mkdir(parents=True)
        for i in range(64):
            Image.new("RGB", (512, 512), (i * 3 % 256, 120, 200 - i)).save(images / f"{i:03d}.png")
            (images / f"{i:03d}.txt").write_text("bench, a colour field\n")
    return model, images


def watch(argv: list[str], env: dict[str, str], cwd: Path, first: re.Pattern[str]) -> dict:
    """Run argv; the time the `first` pattern shows up, and (time, step) of every tqdm step frame."""
    start, started_unix = time.monotonic(), time.time()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sel = selectors.DefaultSelector()
    for f in (proc.stdout, proc.stderr):
        sel.register(f, selectors.EVENT_READ)
    first_at, frames, tail, text = None, [], "", []
    open_streams = 2
    while open_streams:
        for key, _ in sel.select():
            chunk = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
            now = time.monotonic() - start
            if not chunk:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            decoded = chunk.decode("utf-8", "replace")
            text.append(decoded)
            window = tail + decoded
            if first_at is None and first.search(window):
                first_at = now
            frames += [(now, int(m.group(1))) for m in FRAME.finditer(decoded)]
            tail = window[-300:]
    rc = proc.wait()
    output = "".join(text)
    return {"rc": rc, "first_step_s": first_at, "frames": frames, "wall_s": time.monotonic() - start,
            "output": output, "started_unix": started_unix}  # fmt: skip


def steady(points: list[tuple[float, int]], total: int) -> float | None:
    """Steps per second over the second half of the run (the first steps are slower while the GPU warms up)."""
    by_step: dict[int, float] = {}
    for t, step in points:
        by_step.setdefault(step, t)  # first time each step was seen
    start = next((s for s in sorted(by_step) if s >= max(1, total // 2)), None)
    end = max(by_step) if by_step else None
    if start is None or end is None or end <= start:
        return None
    return (end - start) / (by_step[end] - by_step[start])


def raw_run(spec_path: Path, work: Path, tokenizers: Path) -> dict:
    from artlab_kohya.build.command import build_command
    from artlab_kohya.build.inputs import ModelChoice, render_checked, render_inputs
    from artlab_kohya.spec import load_spec
    from artlab_kohya.trainer.install import Install
    from artlab_kohya.trainer.surface import bundled_surface

    loaded = load_spec(spec_path)
    spec = loaded.spec
    folder = work / f"raw-{time.time_ns()}"
    model = ModelChoice(spec.model.source.path, "sd15")  # type: ignore[union-attr]
    inputs = render_inputs(loaded, model, folder, folder / "out", tokenizers)
    render_checked(loaded, inputs, bundled_surface("train_network.py")).write(folder)
    install = Install(spec.kohya.dir, sys.executable)  # type: ignore[arg-type]
    argv, _ = build_command(spec, install, folder / "config.toml", "sd15")  # raw: none of our environment
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = watch(argv, env, install.dir, re.compile(r"steps:\s+\d+%\|[^|]*\|\s*[1-9]\d*/"))
    result["steady_it_s"] = steady(result.pop("frames"), spec.training.max_steps or 0)
    result["output_tail"] = result.pop("output")[-1500:]
    return result


def wrapped_run(spec_path: Path, work: Path, tokenizers: Path) -> dict:
    from artlab_kohya.spec import load_spec

    total = load_spec(spec_path).spec.training.max_steps or 0
    argv = [sys.executable, "-m", "artlab_kohya", "run", str(spec_path), "--plain", "--runs-dir", str(work / "runs")]
    env = {**os.environ, "ARTLAB_KOHYA_TOKENIZERS": str(tokenizers), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    result = watch(argv, env, work, re.compile(r"^step [1-9]\d*/", re.MULTILINE))
    result.pop("frames")
    output = result.pop("output")
    result["output_tail"] = output[-1500:]
    match = re.search(r"run folder: (\S+)", output)
    if match is None:
        return result
    folder = Path(match.group(1))
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    points = [(e["t"], e["step"]) for e in events if e["type"] == "Step"]
    result["steady_it_s"] = steady(points, total)
    record = json.loads((folder / "result.json").read_text())
    result["status"] = record["status"]
    result["prelaunch_s"] = record["launched_at_unix"] - result["started_unix"]  # before the trainer starts
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sd-scripts", type=Path, required=True)
    parser.add_argument("--tokenizers", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/artlab-bench"))
    parser.add_argument("--batch", type=int, nargs="+", default=[8])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--run-first", action="store_true", help="each round starts with run instead of raw")
    parser.add_argument("--warmup", action="store_true", help="one short untimed run first (fills the caches)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--resolution", type=int, default=512, help="512 for the benchmark; small to try it on a CPU")
    parser.add_argument("--model", type=Path, help="an existing random-init SD1.5 file (else built in --work)")
    args = parser.parse_args()
    global RESOLUTION
    RESOLUTION = args.resolution
    sd, tokenizers = args.sd_scripts.resolve(), args.tokenizers.resolve()
    model, images = setup(args.work, sd)
    model = args.model.resolve() if args.model else model
    report: dict = {"python": sys.version.split()[0], "runs": []}
    try:
        import torch

        report["gpu"] = torch.cuda.get_device_name(0)
    except Exception as exc:  # noqa: BLE001
        report["gpu"] = f"unknown ({exc})"
    if args.warmup:
        spec = args.work / "spec-warmup.yaml"
        spec.write_text(spec_text(model, images, sd, args.batch[0], 5))
        t = time.monotonic()
        warm = wrapped_run(spec, args.work, tokenizers)
        report["warmup"] = {
            "wall_s": time.monotonic() - t,
            "status": warm.get("status"),
            "tail": warm["output_tail"][-800:],
        }
        print(f"warm-up: {warm.get('status')} in {time.monotonic() - t:.0f} s", flush=True)
    for batch in args.batch:
        spec = args.work / f"spec-b{batch}.yaml"
        spec.write_text(spec_text(model, images, sd, batch, args.steps))
        for round_no in range(args.rounds):
            order = (
                (("run", wrapped_run), ("raw", raw_run)) if args.run_first else (("raw", raw_run), ("run", wrapped_run))
            )
            for name, fn in order:
                r = fn(spec, args.work, tokenizers)
                r.update(batch=batch, round=round_no, kind=name)
                print(f"b{batch} {name}: rc {r['rc']}, first step {r['first_step_s']}, steady {r['steady_it_s']}",
                      flush=True)  # fmt: skip
                report["runs"].append(r)
                args.out.write_text(json.dumps(report, indent=2))
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
