"""`lora info`, `lora resize` and `lora merge` against the real sd-scripts (marked `engine`; skipped unless set
up, see CONTRIBUTING.md). A real LoRA is made first with sd-scripts' networks/lora.py on the random-init SD1.5
checkpoint (tests/engine/make_lora.py); then it is resized to rank 2 (resize_lora.py, about 2 minutes on 2
CPU cores), merged with a second one into one LoRA, and merged into the 2 GB checkpoint (about a minute)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from artlab_kohya.models.checkpoint import detect_family
from artlab_kohya.models.hashing import sha256_file
from artlab_kohya.models.lora_file import read_lora

pytestmark = pytest.mark.engine
ENGINE = Path(__file__).parent / "engine"


def make_lora(engine: dict[str, str], out: Path, dim: int) -> Path:
    argv = [engine["ENGINE_PYTHON"], str(ENGINE / "make_lora.py"), engine["ARTLAB_KOHYA_DIR"], engine["ENGINE_MODEL"]]
    result = subprocess.run([*argv, str(out), str(dim)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def cli(engine: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    tool = ["--kohya-dir", engine["ARTLAB_KOHYA_DIR"], "--python", engine["ENGINE_PYTHON"]]
    argv = [sys.executable, "-m", "artlab_kohya", "lora", *args, *tool]
    return subprocess.run(argv, capture_output=True, text=True, timeout=900)


def test_info_resize_and_merge_a_real_lora(engine, tmp_path):
    lora = make_lora(engine, tmp_path / "real.safetensors", 4)
    info = read_lora(lora)
    assert info.network == "LoRA" and info.ranks == {4: 264} and info.parts == {"text_encoder": 72, "unet": 192}
    assert info.base["family"] == "sd15"

    small = tmp_path / "small.safetensors"
    result = cli(engine, "resize", str(lora), "--dim", "2", "-o", str(small))
    assert result.returncode == 0, result.stderr[-3000:]
    resized = read_lora(small)
    assert resized.ranks == {2: 264} and resized.dtypes == {"F16": 792}
    record = json.loads(small.with_name(small.name + ".artlab.json").read_text())
    assert record["inputs"][0]["sha256"] == sha256_file(lora) and record["output"]["sha256"] == sha256_file(small)
    assert record["sd_scripts"]["dir"] == str(Path(engine["ARTLAB_KOHYA_DIR"]).resolve())
    assert resized.metadata["ss_network_dim"] == "2"  # resize_lora.py's own record

    other = make_lora(engine, tmp_path / "other.safetensors", 4)
    both = tmp_path / "both.safetensors"
    result = cli(engine, "merge", str(lora), str(other), "--ratio", "0.5", "--ratio", "0.5", "-o", str(both))
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_lora(both).ranks == {4: 264}
    result = cli(engine, "merge", str(lora), str(small), "-o", str(tmp_path / "no.safetensors"))
    assert result.returncode == 2 and "different ranks" in result.stderr

    merged = tmp_path / "merged.safetensors"
    result = cli(engine, "merge", str(lora), "--into", engine["ENGINE_MODEL"], "--ratio", "0.8", "-o", str(merged))
    assert result.returncode == 0, result.stderr[-3000:]
    assert detect_family(merged) == "sd15"
    record = json.loads(merged.with_name(merged.name + ".artlab.json").read_text())
    assert [i["role"] for i in record["inputs"]] == ["lora", "model"] and record["tool"] == "merge_lora"
    assert sha256_file(merged) != record["inputs"][1]["sha256"]  # the weights changed
