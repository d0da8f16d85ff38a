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


BLOCKS_PROBE = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.join(sys.argv[1], "networks"))
import lora
a = json.loads(sys.argv[2])
dims, alphas, cdims, calphas = lora.get_block_dims_and_alphas(
    False, a["block_dims"], a["block_alphas"], 16, 8.0, a["conv_block_dims"], None, 4, 1.0)
lr = lora.parse_block_lr_kwargs(False, a)
print(json.dumps({"dims": dims, "alphas": alphas, "cdims": cdims, "lr": lr}))
"""


def test_block_vectors_parse_in_networks_lora(engine, write_spec):
    """What render writes for named block vectors is what sd-scripts' own parsers read (networks/lora.py)."""
    from artlab_kohya.build.render import RenderInputs, render
    from artlab_kohya.spec import load_spec
    from artlab_kohya.spec.blocks import unet_vector
    from artlab_kohya.trainer.surface import bundled_surface

    path = write_spec(
        "model: {source: /m.safetensors, family: sd15}\ndataset: {subsets: [{path: /img/10_a}]}\n"
        "network:\n  type: lora\n  dim: 16\n  alpha: 8\n  conv_dim: 4\n  block_dims: MIDD\n  block_alphas: ALL\n"
        "  conv_block_dims: OUTALL\n  down_lr_weight: INS\n  mid_lr_weight: 0.5\n  up_lr_weight: OUTS\n"
    )
    inputs = RenderInputs(Path("/m.safetensors"), "sd15", (10,), ("a",), Path("/o"), Path("/o"), None)
    config = render(load_spec(path).spec, inputs, bundled_surface("train_network.py")).config
    args = dict(a.split("=", 1) for a in config["network_args"])
    out = subprocess.run(
        [engine["ENGINE_PYTHON"], "-c", BLOCKS_PROBE, engine["ARTLAB_KOHYA_DIR"], json.dumps(args)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    read = json.loads(out.stdout.strip().splitlines()[-1])
    assert read["dims"] == [int(v * 16) for v in unet_vector("MIDD")] and read["alphas"] == [8.0] * 25
    assert read["cdims"] == [int(v * 4) for v in unet_vector("OUTALL")]
    assert read["lr"] == [*unet_vector("INS")[:12], 0.5, *unet_vector("OUTS")[13:]]
