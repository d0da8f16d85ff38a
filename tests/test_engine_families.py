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

The FLUX.1/SD3 options on the same sets: model.fp8_base and a LyCORIS locon through run (the saved LoRA
holds the tensors plan predicts from the header's block counts; sd3_locon_tiny_cpu.* is the SD3 locon
run), and block swap on sd-scripts' own models: the limits enable_block_swap asserts, and its path
without CUDA (FLUX.1 trains; SD3 fails, so run refuses it on a trainer without CUDA).
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


def run_tiny(engine: dict[str, str], folder: Path, images, family: str, edits: dict[str, str] | None = None):
    """`artlab-kohya run` on the tiny spec of `family`, with `edits` (a line of the spec -> its replacement)."""
    models = tiny_models(engine, family)
    images(folder / "img", [(64, 64)] * 10, caption="bench, a colour field")
    spec = tiny_spec(folder, family, models, engine["ARTLAB_KOHYA_DIR"], engine["ENGINE_PYTHON"])
    text = spec.read_text()
    for line, new in (edits or {}).items():
        assert line in text, line
        text = text.replace(line, new)
    spec.write_text(text)
    env = {
        **os.environ,
        "ARTLAB_KOHYA_TOKENIZERS": str(models / "tokenizers"),
        "ARTLAB_KOHYA_CACHE": str(folder / "cache"),
    }
    return subprocess.run(
        [sys.executable, "-m", "artlab_kohya", "run", str(spec), "--plain", "--ignore-dataset-errors"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.mark.parametrize("family", ["flux1", "sd3"])  # TINY's sd3-medium would need its own 11.5 GB set
def test_a_tiny_lora_through_run_on_a_cpu(engine, tmp_path, images, family):
    result = run_tiny(engine, tmp_path, images, family)
    assert result.returncode == 0, result.stderr[-3000:]
    check_tiny_run(tmp_path, family)


def check_tiny_run(tmp_path: Path, family: str, module: str | None = None) -> Path:
    """The run succeeded with the plan's steps, finite losses and the family's LoRA files; its folder."""
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
        expected = (module or METADATA[family][0], METADATA[family][1])
        assert (meta["ss_network_module"], meta["modelspec.architecture"]) == expected
    lock = (folder / "spec.lock.yaml").read_text()
    assert f"family: {family}" in lock and f"script: {TINY[family].section}_train_network.py" in lock
    return folder


def saved_tensors(path: Path) -> dict[str, list[int]]:
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


OPTIONS = {  # a spec option -> (its edit of the tiny spec, what the trainer's log shows of it)
    "fp8_base": ({"  family: auto\n": "  family: auto\n  fp8_base: true\n"}, "unet dtype: torch.float8_e4m3fn"),
    "locon": ({"  type: lora\n": "  type: locon\n"}, "lycoris.kohya"),
    "loha": ({"  type: lora\n": "  type: loha\n"}, "Using rank adaptation algo: loha"),
    "lokr": ({"  type: lora\n": "  type: lokr\n"}, "Using rank adaptation algo: lokr"),
}
LYCORIS = ("locon", "loha", "lokr")


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("family", ["flux1", "sd3"])
def test_a_family_option_trains_the_tiny_transformer_on_a_cpu(engine, tmp_path, images, family, option):
    """model.fp8_base (the transformer cast to float8_e4m3fn) and a LyCORIS locon (lycoris-lora 3.4.0 wraps
    the blocks' Linears, as networks.lora_flux/lora_sd3 do) through run; the saved LoRA holds the tensors
    plan sizes from the header's block counts."""
    edits, shown = OPTIONS[option]
    result = run_tiny(engine, tmp_path, images, family, edits)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = check_tiny_run(tmp_path, family, "lycoris.kohya" if option in LYCORIS else None)
    log = (folder / "stderr.log").read_text() + (folder / "stdout.log").read_text()
    assert shown in log
    from artlab_kohya.build.plan import dit_blocks_of, sd3_variant_of
    from artlab_kohya.models.netsize import tensor_shapes
    from artlab_kohya.spec import load_spec

    spec = load_spec(tmp_path / "spec.yaml").spec
    kind = option if option in LYCORIS else "lora"
    shapes = tensor_shapes(
        family, kind, dim=4, train_text_encoder=False, variant=sd3_variant_of(spec), blocks=dit_blocks_of(spec)
    )
    assert saved_tensors(folder / "checkpoints" / "tiny_lora.safetensors") == {k: list(v) for k, v in shapes.items()}


# Run with $ENGINE_PYTHON: enable_block_swap on the real FLUX.1 and SD3 transformers (meta device) for
# block counts and swaps around the limits; whether its assertion passes.
SWAP_PROBE = r"""
import contextlib, io, json, logging, os, sys
from dataclasses import replace
sys.path.insert(0, sys.argv[1])
logging.disable(logging.WARNING)
import torch
with contextlib.redirect_stdout(io.StringIO()):
    from library import flux_models, sd3_models
out = []
for family, blocks, n in json.load(sys.stdin):
    with torch.device("meta"), contextlib.redirect_stdout(io.StringIO()):
        if family == "flux1":
            p = replace(flux_models.configs["schnell"].params, depth=blocks[0], depth_single_blocks=blocks[1])
            model = flux_models.Flux(p)
        else:
            d = blocks[0]
            model = sd3_models.create_sd3_mmdit(sd3_models.SD3Params(2, d, 1024, 32, 2048, "rms", [], 4096, 64 * d, "5-large"))
        try:
            model.enable_block_swap(n, torch.device("cpu"))
            out.append(True)
        except AssertionError:
            out.append(False)
json.dump(out, sys.stdout)
"""


def test_block_swap_limits_are_the_transformers(engine, tmp_path):
    """What family_args refuses before launch is what enable_block_swap asserts, on the real models."""
    from artlab_kohya.build.family_args import _swappable

    cases = [("flux1", (1, 1), 1), ("flux1", (2, 4), 1), ("flux1", (2, 4), 2), ("flux1", (3, 6), 3),
             ("flux1", (3, 6), 4), ("flux1", (4, 5), 2), ("flux1", (4, 5), 3),
             ("sd3", (2, 0), 1), ("sd3", (3, 0), 1), ("sd3", (4, 0), 2), ("sd3", (4, 0), 3)]  # fmt: skip
    probe = tmp_path / "swap_probe.py"
    probe.write_text(SWAP_PROBE)
    result = subprocess.run(
        [engine["ENGINE_PYTHON"], str(probe), engine["ARTLAB_KOHYA_DIR"]],
        input=json.dumps(cases), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == [_swappable(f, b, n) for f, b, n in cases]  # type: ignore[arg-type]


# Run with $ENGINE_PYTHON: block swap as flux_train_network.py / sd3_train_network.py set it up on a
# trainer without CUDA (accelerator.device is the CPU), then one forward and backward pass, on small
# random transformers of sd-scripts' own classes (enough blocks to swap one).
SWAP_ON_CPU_PROBE = r"""
import contextlib, io, json, logging, sys
from dataclasses import replace
sys.path.insert(0, sys.argv[1])
logging.disable(logging.WARNING)
import torch
with contextlib.redirect_stdout(io.StringIO()):
    from library import flux_models, sd3_models
torch.manual_seed(0)
cpu, out = torch.device("cpu"), {}
with contextlib.redirect_stdout(io.StringIO()):
    p = replace(flux_models.configs["schnell"].params, hidden_size=256, num_heads=2, depth=2, depth_single_blocks=4)
    flux = flux_models.Flux(p)
    sd3 = sd3_models.create_sd3_mmdit(sd3_models.SD3Params(2, 3, 1024, 32, 2048, "rms", [], 4096, 192, "5-large"))
    for name, model in (("flux1", flux), ("sd3", sd3)):
        for param in model.parameters():
            torch.nn.init.normal_(param, std=0.02)  # create_sd3_mmdit leaves some as torch.empty
        try:
            model.enable_block_swap(1, cpu)
            model.move_to_device_except_swap_blocks(cpu)
            model.prepare_block_swap_before_forward()
            if name == "flux1":
                ids = torch.zeros(1, 16, 3)
                y = model(torch.randn(1, 16, 64), ids, torch.randn(1, 8, 4096), torch.zeros(1, 8, 3),
                          torch.tensor([0.5]), torch.randn(1, 768))
            else:
                y = model(torch.randn(1, 16, 8, 8), torch.tensor([500.0]), torch.randn(1, 2048), torch.randn(1, 8, 4096))
            y.float().pow(2).mean().backward()
            out[name] = {"finite": bool(torch.isfinite(y).all())}
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
json.dump(out, sys.stdout)
"""


def test_block_swap_without_cuda_runs_flux_and_fails_sd3(engine, tmp_path):
    """sd-scripts' block swap on the CPU device (custom_offloading_utils' path without CUDA, "not tested")
    trains FLUX.1, whose blocks are alike, and fails SD3 at the first step (it pairs a swapped joint block's
    modules with the smaller last one's): trainer/needs.device_issues refuses SD3's before launch."""
    probe = tmp_path / "swap_cpu_probe.py"
    probe.write_text(SWAP_ON_CPU_PROBE)
    result = subprocess.run(
        [engine["ENGINE_PYTHON"], str(probe), engine["ARTLAB_KOHYA_DIR"]], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {
        "flux1": {"finite": True},
        "sd3": {"error": "AttributeError: 'Sequential' object has no attribute 'weight'"},
    }
