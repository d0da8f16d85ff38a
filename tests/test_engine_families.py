"""Tiny SD3 and FLUX.1 LoRAs through `artlab-kohya run` with the real sd-scripts on a CPU (marked `engine`).

The transformers are random-initialised with sd-scripts' own code at a tiny size (TINY in
test_train_families.py): an SD3.5-large-shaped MMDiT of 2 joint blocks of width 128, and a FLUX.1 schnell
transformer of 1 double and 1 single block at full width. Their VAE/AE, CLIP-L, CLIP-G and T5-XXL are full
size, as sd-scripts builds those with fixed configurations (T5-XXL alone is 9.8 GB in bf16). Each set is
built once into `tiny-<family>/` beside ENGINE_MODEL (about 11.5 GB on disk; 1.5-2.5 minutes and 10.4 GB of
memory on 2 cores) and reused. Training loads T5-XXL in bf16: about 12 GB of memory, 1-1.5 minutes.
10 images at 64 px x 2 repeats, batch 4, 2 epochs: the run must succeed with the plan's total, finite
losses and two LoRA files with the family's sd-scripts metadata. tests/data/transcripts/sd3_tiny_cpu.* and
flux_schnell_tiny_cpu.* are such runs, replayed in CI by test_train_families.py.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_families import TINY, tiny_spec

pytestmark = pytest.mark.engine

METADATA = {  # what sd-scripts writes into the LoRA of each tiny model
    "sd3": ("networks.lora_sd3", "stable-diffusion-3-5-large/lora"),
    "flux1": ("networks.lora_flux", "flux-1-schnell/lora"),
}


def tiny_models(engine: dict[str, str], family: str) -> Path:
    """The tiny family's files and a tokenizer folder (the CLIP ones copied, the toy T5 one), built once."""
    from artlab_kohya.trainer.install import Install, run_engine_script

    folder = Path(engine["ENGINE_MODEL"]).parent / f"tiny-{family}"
    done = folder / "built.json"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        tokenizers = folder / "tokenizers"
        for name in TINY[family].tokenizers:
            shutil.copytree(Path(engine["ENGINE_TOKENIZERS"]) / name, tokenizers / name)
        script, *template = TINY[family].builder
        args = [a.format(out=folder, tokenizers=tokenizers) for a in template]
        install = Install(Path(engine["ARTLAB_KOHYA_DIR"]), engine["ENGINE_PYTHON"])
        info = run_engine_script(
            install, script, [engine["ARTLAB_KOHYA_DIR"], *args], timeout=1200, what=f"building tiny {family}"
        )
        assert "error" not in info, info
        done.write_text(json.dumps(info, indent=1))
    return folder


@pytest.mark.parametrize("family", ["flux1", "sd3"])  # TINY's sd3-medium would need its own 11.5 GB set
def test_a_tiny_lora_through_run_on_a_cpu(engine, tmp_path, images, family):
    models = tiny_models(engine, family)
    images(tmp_path / "img", [(64, 64)] * 10, caption="bench, a colour field")
    spec = tiny_spec(tmp_path, family, models, engine["ARTLAB_KOHYA_DIR"], engine["ENGINE_PYTHON"])
    env = {
        **os.environ,
        "ARTLAB_KOHYA_TOKENIZERS": str(models / "tokenizers"),
        "ARTLAB_KOHYA_CACHE": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "artlab_kohya", "run", str(spec), "--plain", "--ignore-dataset-errors"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = (tmp_path / "runs" / "tiny_lora").iterdir()
    record = json.loads((folder / "result.json").read_text())
    assert record["status"] == "succeeded"
    assert [Path(c["file"]).name for c in record["checkpoints"]] == [
        "tiny_lora-000001.safetensors",
        "tiny_lora.safetensors",
    ]
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    summary = next(e for e in events if e["type"] == "TrainingSummary")
    assert summary["total_steps"] == 10  # 10 images x 2 repeats / batch 4 x 2 epochs, as plan says
    steps = [e for e in events if e["type"] == "Step"]
    assert steps[-1]["step"] == 10 and all(math.isfinite(s["loss"]) for s in steps if s["loss"] is not None)
    for checkpoint in record["checkpoints"]:
        data = Path(checkpoint["file"]).read_bytes()
        meta = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])["__metadata__"]
        assert (meta["ss_network_module"], meta["modelspec.architecture"]) == METADATA[family]
    lock = (folder / "spec.lock.yaml").read_text()
    assert f"family: {family}" in lock and f"script: {TINY[family].section}_train_network.py" in lock
