"""`artlab-kohya report RUN` on a 10,000-step run (goal: <= 1 s).

    .venv/bin/python benchmarks/bench_report.py [--steps 10000] [--epochs 20] [--repeat 7]

Builds one run folder as `run` writes it: 10,000 step events, an epoch start and a checkpoint per
epoch (real .safetensors headers with sd-scripts-sized ss_* metadata, ss_tag_frequency included), two
sample PNGs per epoch named as sd-scripts names them, result.json and the lock. Times `report RUN`
and `report RUN --self-contained` as fresh processes (wall clock, median of --repeat after a warm-up)
next to `python -c pass`, and prints the page's size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import yaml


def png(seed: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    rng = random.Random(seed)
    raw = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(64 * 3)) for _ in range(64))
    ihdr = (64).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def safetensors(metadata: dict[str, str]) -> bytes:
    header = {"__metadata__": metadata, "w": {"dtype": "F16", "shape": [4, 4], "data_offsets": [0, 32]}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + b"\x00" * 32


def build(folder: Path, steps: int, epochs: int) -> Path:
    name = "bench"
    out = folder / "checkpoints"
    (out / "sample").mkdir(parents=True)
    per = steps // epochs
    prompts = ["sks dog on a beach --s 28", "sks dog, portrait --n lowres --s 28"]
    spec = {
        "model": {"source": {"type": "local", "path": "/models/base.safetensors"}, "family": "sd15"},
        "dataset": {"resolution": 512, "batch_size": 4},
        "network": {"type": "lora", "dim": 32, "alpha": 16.0},
        "optimizer": {"type": "AdamW8bit", "learning_rate": 0.0001, "unet_lr": 0.0001},
        "training": {"epochs": epochs, "seed": 42},
        "output": {"name": name, "dir": None, "logging_dir": None},
        "sample": {"prompts": prompts, "every_n_epochs": 1},
    }
    lock = {
        "spec_file": "/projects/bench/spec.yaml",
        "spec_git": None,
        "overrides": [],
        "spec": spec,
        "model": {"path": "/models/base.safetensors", "source": "local", "sha256": "ab" * 32, "family": "sd15"},
        "kohya": {"dir": "/opt/sd-scripts", "commit": "48d368fa557731ad0488c07304dfeba8c07910eb"},
        "plan": {"total_steps": steps, "epochs": epochs, "steps_per_epoch": per},
    }
    (folder / "spec.lock.yaml").write_text(yaml.safe_dump(lock, sort_keys=False))
    tags = {f"tag{i}": i for i in range(400)}
    rng = random.Random(0)
    lines, checkpoints = [], []
    for e in range(1, epochs + 1):
        lines.append(json.dumps({"t": e, "type": "EpochStarted", "epoch": e, "total": epochs}))
        for s in range((e - 1) * per + 1, e * per + 1):
            loss = 0.06 + 0.08 * 0.9997**s + rng.gauss(0, 0.01)
            lines.append(json.dumps({"t": s * 0.7, "type": "Step", "epoch": e, "step": s, "total": steps,
                                     "loss": loss, "it_s": 1.4}))  # fmt: skip
        file = out / (f"{name}.safetensors" if e == epochs else f"{name}-{e:06d}.safetensors")
        meta = {f"ss_key{k}": "x" * 40 for k in range(60)}
        meta |= {"ss_epoch": str(e), "ss_output_name": name, "ss_tag_frequency": json.dumps({"10_sks": tags})}
        file.write_bytes(safetensors(meta))
        lines.append(json.dumps({"t": e + 0.5, "type": "CheckpointSaved", "path": str(file)}))
        checkpoints.append({"file": str(file), "epoch": e, "avr_loss": loss, "size": 100, "sha256": "cd" * 32})
        for i in range(len(prompts)):
            (out / "sample" / f"{name}_e{e:06d}_{i:02d}_20261128{e:06d}.png").write_bytes(png(e * 10 + i))
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
    result = {"status": "succeeded", "exit_code": 0, "started": "2026-11-28T10:00:00+00:00", "duration_s": 7000.0,
              "checkpoints": checkpoints}  # fmt: skip
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def timed(argv: list[str], repeat: int) -> list[float]:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        run = build(work / "runs" / "bench" / "20261128-100000-abcdef", args.steps, args.epochs)
        cli = [sys.executable, "-m", "artlab_kohya", "report", str(run)]
        for label, argv in (
            ("python -c pass", [sys.executable, "-c", "pass"]),
            (f"report ({args.steps:,} steps)", cli),
            ("report --self-contained", [*cli, "--self-contained", "-o", str(work / "inline.html")]),
        ):
            times = timed(argv, args.repeat)
            print(f"{label:<28} median {statistics.median(times) * 1000:7.1f} ms  fastest {min(times) * 1000:7.1f} ms")
        for page in (run / "report.html", work / "inline.html"):
            print(f"{page.name}: {page.stat().st_size / 1e3:.0f} KB")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
