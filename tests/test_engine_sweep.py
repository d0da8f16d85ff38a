"""`sweep` against the real sd-scripts (marked `engine`; skipped unless set up, see README).

The 2x2 sweep of test_sweep.py for real: network.dim [4, 8] x optimizer.unet_lr [1e-4, 5e-5] on the
random-init SD1.5 checkpoint at 64 px, 3 epochs of 2 steps each, one sample prompt rendered every
epoch (64 px, 2 sampler steps). Ctrl-C in the third run, then the same command resumes with no run
repeated; every run leaves three checkpoints with sd-scripts' ss_* metadata and three sample images;
`runs`, `pick` and `report` agree with the events. About 6 steps per run: a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chromium import Chromium, find_chromium
from click.testing import CliRunner

from artlab_kohya.cli.main import main
from artlab_kohya.experiments.pick import pick
from artlab_kohya.experiments.records import read_run

pytestmark = pytest.mark.engine

NAMES = ["tiny-dim4-unet_lr1e-4", "tiny-dim4-unet_lr5e-5", "tiny-dim8-unet_lr1e-4", "tiny-dim8-unet_lr5e-5"]
PROMPT = "sks dog on a beach --w 64 --h 64 --s 2 --d 1"


def project(root: Path, images, engine: dict[str, str]) -> Path:
    images(root / "img/1_sks", [(64, 64)] * 10)
    spec = root / "spec.yaml"
    spec.write_text(
        f"model:\n  source: {engine['ENGINE_MODEL']}\n  family: sd15\n"
        "dataset:\n  resolution: 64\n  batch_size: 5\n  buckets:\n    enabled: false\n"
        "  subsets:\n    - path: img/1_sks\n"
        "network:\n  type: lora\n  dim: 4\n  alpha: 1\n"
        "training:\n  epochs: 3\n  mixed_precision: 'no'\n"
        "output:\n  name: tiny\n  log_with: none\n"
        f"sample:\n  prompts:\n    - '{PROMPT}'\n  every_n_epochs: 1\n"
        f"kohya:\n  dir: {engine['ARTLAB_KOHYA_DIR']}\n  python: {engine['ENGINE_PYTHON']}\n"
        "matrix:\n  network.dim: [4, 8]\n  optimizer.unet_lr: [1.0e-4, 5.0e-5]\n"
    )
    return spec


def sweep_cli(spec: Path) -> list[str]:
    return [sys.executable, "-m", "artlab_kohya", "sweep", str(spec), "--plain", "--ignore-dataset-errors"]


def env_for(engine: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ARTLAB_KOHYA_TOKENIZERS": engine["ENGINE_TOKENIZERS"],
        "ARTLAB_KOHYA_CACHE": str(tmp_path / "cache"),
    }


def folders(root: Path, name: str) -> list[Path]:
    parent = root / "runs" / name
    return sorted(p for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []


def metadata(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size])["__metadata__"]


def test_a_2x2_sweep_for_real(engine, tmp_path, images):
    started = time.monotonic()
    spec = project(tmp_path, images, engine)
    env = env_for(engine, tmp_path)
    proc = subprocess.Popen(sweep_cli(spec), env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    seen = []
    third = False
    for line in proc.stderr:
        seen.append(line)
        third |= line.startswith("sweep: run 3/4")
        if third and line.startswith("step "):
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, "".join(seen[-40:]) + rest
    (sweep,) = (tmp_path / "runs" / "tiny").iterdir()
    record = json.loads((sweep / "sweep.json").read_text())
    assert [r["status"] for r in record["runs"]] == ["succeeded", "succeeded", "interrupted", "pending"]
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert left == [], "trainer processes left behind"

    done = subprocess.run(sweep_cli(spec), env=env, capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-4000:]
    record = json.loads((sweep / "sweep.json").read_text())
    assert record["status"] == "finished" and [r["status"] for r in record["runs"]] == ["succeeded"] * 4
    assert [len(folders(tmp_path, n)) for n in NAMES] == [1, 1, 2, 1]  # only the interrupted one ran twice

    for entry, dim in zip(record["runs"], (4, 4, 8, 8), strict=True):
        folder = (sweep / entry["folder"]).resolve()
        result = json.loads((folder / "result.json").read_text())
        files = [Path(c["file"]) for c in result["checkpoints"]]
        name = entry["name"]
        assert [f.name for f in files] == [
            f"{name}-000001.safetensors",
            f"{name}-000002.safetensors",
            f"{name}.safetensors",
        ]
        for f in files:
            meta = metadata(f)
            assert meta["ss_network_dim"] == str(dim) and meta["ss_output_name"] == name
        samples = sorted(p.name for p in (folder / "checkpoints" / "sample").glob("*.png"))
        assert [s[: len(name) + 11] for s in samples] == [f"{name}_e{e:06d}_00" for e in (1, 2, 3)], samples
        run = read_run(folder)
        assert [e.epoch for e in run.epochs] == [1, 2, 3] and all(e.checkpoint for e in run.epochs)
        assert [e.end_step for e in run.epochs] == [2, 4, 6]

    runner = CliRunner()
    listing = json.loads(runner.invoke(main, ["runs", str(sweep), "--json"]).stdout)
    assert [r["run"] for r in listing["runs"]] == NAMES
    picks = json.loads(runner.invoke(main, ["pick", str(sweep), "--json"]).stdout)["runs"]
    for row in listing["runs"]:
        expected = pick(read_run(Path(row["folder"])).epochs).chosen
        assert expected is not None and row["pick_epoch"] == expected.epoch
        assert next(p for p in picks if p["run"] == row["run"])["pick"]["epoch"] == expected.epoch
    page = Path(runner.invoke(main, ["report", str(sweep)]).stdout.strip())
    browser = find_chromium()
    if browser is not None:
        with Chromium(browser) as b:
            b.open(page.as_uri())
            assert b.load_images() == [64] * 4  # each run's last sample, 64 px
            assert b.console_problems() == []
    print(f"\nengine sweep wall time: {time.monotonic() - started:.0f} s")
