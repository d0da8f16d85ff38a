"""What `artlab-kohya run` adds before the trainer starts, cold (empty cache) and warm.

    python benchmarks/bench_prelaunch.py SPEC [--runs 3]

Needs a spec whose install works (kohya.dir/python or ARTLAB_KOHYA_DIR/PYTHON, and
ARTLAB_KOHYA_TOKENIZERS where there is no network). Each sample starts `artlab-kohya run` as a fresh
process, reads `launched_at_unix` from the new run's result.json as soon as the trainer is started,
and kills the run. Cold samples use a new, empty ARTLAB_KOHYA_CACHE (model hash, argument surface and
trainer versions computed again); warm ones reuse the cache the cold sample filled.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sample(spec: Path, cache: Path, runs: Path) -> float:
    env = {**os.environ, "ARTLAB_KOHYA_CACHE": str(cache)}
    argv = [sys.executable, "-m", "artlab_kohya", "run", str(spec), "--plain", "--ignore-dataset-errors",
            "--runs-dir", str(runs)]  # fmt: skip
    start = time.time()
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    folder = None
    for line in proc.stderr:
        if line.startswith("run folder: "):
            folder = Path(line.split(": ", 1)[1].strip())
        if line.startswith("plan: "):  # printed right before the launch
            break
    deadline = time.time() + 60
    launched = None
    while folder is not None and launched is None and time.time() < deadline:
        launched = json.loads((folder / "result.json").read_text()).get("launched_at_unix")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if launched is None:
        raise SystemExit("the run did not reach its launch; run it by hand to see why")
    return launched - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cold, warm = [], []
    with tempfile.TemporaryDirectory(prefix="artlab-prelaunch-") as tmp:
        for i in range(args.runs):
            cache = Path(tmp) / f"cache{i}"
            cold.append(sample(args.spec, cache, Path(tmp) / "runs"))
            warm.append(sample(args.spec, cache, Path(tmp) / "runs"))
    print(f"cold: median {statistics.median(cold):.2f} s  ({', '.join(f'{x:.2f}' for x in cold)})")
    print(f"warm: median {statistics.median(warm):.2f} s  ({', '.join(f'{x:.2f}' for x in warm)})")


if __name__ == "__main__":
    main()
