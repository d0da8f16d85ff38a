"""Speed of the defaults before and after issue 13, and of `launch.profile: fast`, through `artlab-kohya tune`.

    python benchmarks/bench_speed.py --sd-scripts DIR --tokenizers DIR --work /tmp/speed --out OUT_DIR \\
        [--steps 50] [--timeout 150] [--deadline 380] [--batch]

One `tune` call on one card, its candidates one after another on the same random-initialised SD1.5 (built
with sd-scripts' own code; bench_gpu.py's spec: 512 px, 64 images x 10 repeats, batch 8, LoRA dim 32, bf16,
SDPA, latents cached in memory):
- before: the render of the commit before issue 13 (no data-loader workers, AdamW's foreach kernels);
- default: the default profile now (workers from the machine, fused AdamW);
- fast: `launch.profile: fast` with no tune result cached (cuDNN autotuning, latents cached 4 at a time);
- with --batch, the fastest of them at 2x, 4x, ... the batch (tune --batch).
Each candidate trains --steps steps, seed 42; tune measures steady images/s over the second half of the
steps and the time to the first step, by phase. Written to OUT_DIR: tune.json (everything), startup.json
(each candidate's phases), losses.json (the per-step average losses and how far apart they are).
The whole tune is stopped at --deadline seconds; tune.json keeps what finished.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CANDIDATES = (
    "before:training.workers=0,training.persistent_workers=false,optimizer.args.fused=false",
    "default:",
    "fast:launch.profile=fast",
)


def loss_agreement(candidates: list[dict]) -> dict:
    """Per-step average losses of each candidate, and the largest relative gap to `before` over the steps both have."""
    losses = {c["name"]: c.get("losses") or [] for c in candidates}
    base = losses.get("before") or []
    gaps = {}
    for name, curve in losses.items():
        if name == "before" or not curve or not base:
            continue
        n = min(len(curve), len(base))
        gaps[name] = {
            "steps": n,
            "max_relative_gap": round(max(abs(a - b) / abs(b) for a, b in zip(curve[:n], base[:n], strict=True)), 5),
            "final": [round(base[n - 1], 5), round(curve[n - 1], 5)],
        }
    return {"losses": losses, "vs_before": gaps}


def main() -> None:
    import bench_gpu
    from bench_sdxl import cli_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sd-scripts", type=Path, required=True)
    parser.add_argument("--tokenizers", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/artlab-speed"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=150.0)
    parser.add_argument("--deadline", type=float, default=380.0, help="seconds for the whole tune")
    parser.add_argument("--batch", action="store_true", help="also the fastest at 2x, 4x, ... the batch")
    parser.add_argument("--resolution", type=int, default=512)
    args = parser.parse_args()
    bench_gpu.RESOLUTION = args.resolution
    sd, tokenizers = args.sd_scripts.resolve(), args.tokenizers.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    model, images = bench_gpu.setup(args.work, sd)
    print(f"setup: {time.monotonic() - t:.0f} s", flush=True)
    spec = args.work / "spec-speed.yaml"
    spec.write_text(bench_gpu.spec_text(model, images, sd, args.batch_size, args.steps))
    runs = args.work / "runs"
    env = cli_env(tokenizers, args.work)
    argv = [sys.executable, "-m", "artlab_kohya", "tune", str(spec), "--steps", str(args.steps)]
    argv += ["--timeout", str(args.timeout), "--only-mine", "--runs-dir", str(runs)]
    for candidate in CANDIDATES:
        argv += ["--candidate", candidate]
    if args.batch:
        argv.append("--batch")
    print(" ".join(argv), flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(argv, env=env, cwd=args.work, timeout=args.deadline, capture_output=True, text=True)
        (args.out / "tune.out").write_text(done.stdout + "\n--- stderr\n" + done.stderr)
        print(done.stdout, flush=True)
    except subprocess.TimeoutExpired as exc:
        print(f"tune stopped at the deadline ({args.deadline:.0f} s)", flush=True)
        (args.out / "tune.out").write_text(str(exc.stdout or "") + "\n--- stderr\n" + str(exc.stderr or ""))
    print(f"tune: {time.monotonic() - started:.0f} s", flush=True)
    found = sorted(runs.glob("*/tune-*/tune.json"))
    if not found:
        print("no tune.json", flush=True)
        return
    record = json.loads(found[-1].read_text())
    shutil.copy(found[-1], args.out / "tune.json")
    startup = {}
    for c in record["candidates"] + record.get("batches", []):
        if c.get("folder"):
            result = json.loads((Path(c["folder"]) / "result.json").read_text())
            startup[c["name"]] = result.get("startup")
            lock = (Path(c["folder"]) / "config.toml").read_text()
            (args.out / f"config-{c['name']}.toml").write_text(lock)
    (args.out / "startup.json").write_text(json.dumps(startup, indent=2))
    (args.out / "losses.json").write_text(json.dumps(loss_agreement(record["candidates"]), indent=2))
    try:
        import torch

        card = torch.cuda.get_device_name(0)
    except Exception as exc:  # noqa: BLE001
        card = f"unknown ({exc})"
    print(f"card: {card}; python {sys.version.split()[0]}", flush=True)
    for c in record["candidates"] + record.get("batches", []):
        first = startup.get(c["name"]) or {}
        print(f"{c['name']}: {c['status']} {c.get('images_per_s')} images/s, first step {first.get('first_step_s')} s")
    print(json.dumps(loss_agreement(record["candidates"])["vs_before"]), flush=True)


if __name__ == "__main__":
    main()
