"""Dataset check timings: `artlab-kohya dataset check` on a generated 10,000-image folder.

    .venv/bin/python benchmarks/bench_dataset.py [--images 10000] [--runs 7] [--tokenizer DIR]

Each run is a fresh process (what a user waits for), timed by wall clock; the median of --runs is
reported next to `python -c pass` started the same way. The images are real PNG files in six sizes,
every one different (a numbered text chunk), so all files of one size collide on size and the
duplicate search must hash them: the worst case for it. Captions are 20-30 tags, all different.
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

SIZES = [(512, 512), (512, 768), (768, 512), (640, 896), (1024, 576), (600, 800)]
TAGS = ["1girl", "solo", "smile", "outdoors", "blue sky", "looking at viewer", "long hair", "short sleeves",
        "holding", "standing", "full body", "day", "cloud", "tree", "grass", "dress", "hat", "flower",
        "open mouth", "brown hair", "blue eyes", "jewelry", "earrings", "sitting", "upper body", "indoors",
        "window", "book", "cup", "table"]  # fmt: skip


def chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")


def png_bytes(width: int, height: int, number: int, pad: int = 0) -> bytes:
    """A valid 1-bit grayscale PNG, made unique by a numbered tEXt chunk (pad: extra bytes in it)."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    idat = zlib.compress(row * height)
    text = chunk(b"tEXt", b"Comment\x00" + f"{number:08d}".encode() + b" " * pad)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + text + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def make_dataset(root: Path, count: int, distinct: bool) -> Path:
    folder = root / "img" / "10_bench"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        w, h = SIZES[i % len(SIZES)]
        (folder / f"{i:05d}.png").write_bytes(png_bytes(w, h, i, pad=i // len(SIZES) if distinct else 0))
        tags = [TAGS[(i * 7 + k * 3) % len(TAGS)] for k in range(20 + i % 10)]
        (folder / f"{i:05d}.txt").write_text(f"bench, {', '.join(tags)}, photo {i}\n")
    return folder


def run_once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def timed(argv: list[str], runs: int, env: dict[str, str]) -> tuple[float, list[float]]:
    times = [run_once(argv, env) for _ in range(runs)]
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tokenizer", help="a CLIP tokenizer folder (default: none, so token counts are estimates)")
    parser.add_argument(
        "--distinct-sizes",
        action="store_true",
        help="give every file its own byte size, as photos have (default: all files of a size collide)",
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="artlab-bench-"))
    env = dict(os.environ, ARTLAB_KOHYA_CACHE=str(root / "cache"), HF_HUB_CACHE=str(root / "hub"))
    try:
        folder = make_dataset(root, args.images, args.distinct_sizes)
        os.sync()  # the 20,000 new files' writeback would otherwise land inside the timed runs
        code = (
            "import sys; from artlab_kohya.cli.dataset import dataset; "
            "dataset.main(sys.argv[1:], prog_name='dataset', standalone_mode=True)"
        )
        check = [sys.executable, "-c", code, "check", str(folder), "--batch-size", "4", "--json"]
        if args.tokenizer:
            check += ["--tokenizer", args.tokenizer]
        timed(check, 1, env)  # warm the page cache once, as a second look would be
        pairs = [(run_once([sys.executable, "-c", "pass"], env), run_once(check, env)) for _ in range(args.runs)]
        baseline = statistics.median(p for p, _ in pairs)  # interleaved, so both see the same moments
        all_runs = [c for _, c in pairs]
        median = statistics.median(all_runs)
        deep_median, _ = timed([*check, "--deep"], max(1, args.runs // 3), env)
    finally:
        shutil.rmtree(root)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"python -c pass: {baseline * 1000:.1f} ms")
    tokens = "CLIP BPE" if args.tokenizer else "estimate"
    sizes = "distinct file sizes" if args.distinct_sizes else "file sizes colliding"
    print(
        f"dataset check ({args.images} images, {sizes}, tokens: {tokens}): median {median * 1000:.1f} ms "
        f"({median / baseline:.1f}x), fastest {min(all_runs) * 1000:.0f} ms, "
        f"runs: {', '.join(f'{t * 1000:.0f}' for t in all_runs)} ms"
    )
    print(f"dataset check --deep: median {deep_median * 1000:.1f} ms")


if __name__ == "__main__":
    main()
