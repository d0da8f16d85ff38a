"""Core timings: `artlab-kohya --help` and `plan` on a generated 10,000-image dataset.

    .venv/bin/python benchmarks/bench_core.py [--images 10000] [--runs 7]

Each command runs as a fresh process (what a user waits for), timed by wall clock; the median of
--runs is reported next to `python -c pass` started the same way, as a ratio within one run.
Images are real PNG files (varied sizes, so bucketing has work to do) written once to a temp folder.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path


def png_bytes(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG: headers are what plan reads, pixel data stays tiny."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b"")
    )


def make_dataset(root: Path, count: int) -> Path:
    folder = root / "img" / "10_bench"
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [(512, 512), (512, 768), (768, 512), (640, 896), (1024, 576), (600, 800)]
    blobs = [png_bytes(w, h) for w, h in sizes]
    for i in range(count):
        (folder / f"{i:05d}.png").write_bytes(blobs[i % len(blobs)])
        (folder / f"{i:05d}.txt").write_text("bench, a test image\n")
    spec = root / "spec.yaml"
    spec.write_text(
        "model:\n  source: base.safetensors\n  family: sd15\n"
        "dataset:\n  resolution: 512\n  batch_size: 4\n  subsets:\n    - path: img/10_bench\n"
        "network:\n  type: lora\n  dim: 32\n  alpha: 16\n"
    )
    return spec


def timed(argv: list[str], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    exe = shutil.which("artlab-kohya", path=str(Path(sys.executable).parent)) or "artlab-kohya"
    root = Path(tempfile.mkdtemp(prefix="artlab-bench-"))
    try:
        spec = make_dataset(root, args.images)
        timed([exe, "plan", str(spec)], 1)  # warm the page cache once, as a second look would be
        baseline, _ = timed([sys.executable, "-c", "pass"], args.runs)
        help_median, help_all = timed([exe, "--help"], args.runs)
        plan_median, plan_all = timed([exe, "plan", "--json", str(spec)], args.runs)
    finally:
        shutil.rmtree(root)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"python -c pass            median {baseline * 1000:7.1f} ms")
    print(
        f"artlab-kohya --help       median {help_median * 1000:7.1f} ms  ({help_median / baseline:.1f}x python -c pass)"
        f"  runs: {', '.join(f'{t * 1000:.0f}' for t in help_all)}"
    )
    ratio = plan_median / baseline
    runs = ", ".join(f"{t * 1000:.0f}" for t in plan_all)
    median = f"{plan_median * 1000:7.1f} ms"
    print(f"plan, {args.images} images   median {median}  ({ratio:.1f}x python -c pass)  runs: {runs}")


if __name__ == "__main__":
    main()
