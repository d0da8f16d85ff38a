"""`artlab-kohya run` against the real sd-scripts (marked `engine`; skipped unless set up, see README).

A 2-epoch LoRA at 64 px on the random-init SD1.5 checkpoint: two checkpoints with sd-scripts'
`ss_` metadata, step events with losses, result.json succeeded. Then Ctrl-C during training:
exit 130, the run marked interrupted, and no trainer process left behind.
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

pytestmark = pytest.mark.engine


def project(root: Path, images, engine: dict[str, str], epochs: int) -> Path:
    images(root / "img/5_sks", [(64, 64)] * 10)
    spec = root / "spec.yaml"
    spec.write_text(
        f"model:\n  source: {engine['ENGINE_MODEL']}\n  family: sd15\n"
        "dataset:\n  resolution: 64\n  batch_size: 5\n  buckets:\n    enabled: false\n"
        "  subsets:\n    - path: img/5_sks\n"
        "network:\n  type: lora\n  dim: 4\n  alpha: 1\n"
        f"training:\n  epochs: {epochs}\n  mixed_precision: 'no'\n"
        "output:\n  name: tiny\n  log_with: none\n"
        f"kohya:\n  dir: {engine['ARTLAB_KOHYA_DIR']}\n  python: {engine['ENGINE_PYTHON']}\n"
    )
    return spec


def cli(spec: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "artlab_kohya", "run", str(spec), "--plain", "--ignore-dataset-errors", *extra]


def env_for(engine: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ARTLAB_KOHYA_TOKENIZERS": engine["ENGINE_TOKENIZERS"],
        "ARTLAB_KOHYA_CACHE": str(tmp_path / "cache"),
    }


def safetensors_metadata(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size])["__metadata__"]


def test_two_epoch_lora_end_to_end(engine, tmp_path, images):
    spec = project(tmp_path, images, engine, epochs=2)
    result = subprocess.run(cli(spec), env=env_for(engine, tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = (tmp_path / "runs" / "tiny").iterdir()
    record = json.loads((folder / "result.json").read_text())
    assert record["status"] == "succeeded" and record["exit_code"] == 0
    files = [Path(c["file"]) for c in record["checkpoints"]]
    assert [f.name for f in files] == ["tiny-000001.safetensors", "tiny.safetensors"]
    assert [c["epoch"] for c in record["checkpoints"]] == [1, 2]
    assert all(isinstance(c["avr_loss"], float) for c in record["checkpoints"])
    for f in files:
        meta = safetensors_metadata(f)
        assert meta["ss_network_dim"] == "4" and meta["ss_output_name"] == "tiny"
        assert meta["ss_num_train_images"] == "50" and meta["ss_seed"] == "42"
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["type"] == "Step"]
    assert [s["step"] for s in steps][-1] == 20 and all(isinstance(s["loss"], float) for s in steps)
    assert {s["epoch"] for s in steps} == {1, 2}
    summary = next(e for e in events if e["type"] == "TrainingSummary")
    assert summary["total_steps"] == 20  # the plan's number: 10 images x 5 repeats x 2 epochs / 5
    lock = (folder / "spec.lock.yaml").read_text()
    assert "commit: 48d368fa557731ad0488c07304dfeba8c07910eb" in lock and "accelerate: 1.6.0" in lock


def test_ctrl_c_during_training(engine, tmp_path, images):
    spec = project(tmp_path, images, engine, epochs=50)
    proc = subprocess.Popen(cli(spec), env=env_for(engine, tmp_path), stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("step "):
            break
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, "".join(seen) + rest
    (folder,) = (tmp_path / "runs" / "tiny").iterdir()
    assert json.loads((folder / "result.json").read_text())["status"] == "interrupted"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-f", str(folder / "config.toml")], capture_output=True, text=True).stdout
        if not left.strip():
            break
        time.sleep(0.5)
    assert not left.strip(), f"trainer processes left: {left}"
