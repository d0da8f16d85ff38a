"""models/lora_file.py and `lora info`: synthetic files with the key names and shapes real trainers write
(tests/lora_files.py) and the metadata sd-scripts wrote on real runs (tests/data/lora_metadata.json)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from lora_files import recorded, write_lora, write_safetensors

from artlab_kohya.cli.main import main
from artlab_kohya.models.checkpoint import ModelError
from artlab_kohya.models.lora_file import read_lora


def test_an_sd_scripts_lora_as_trained(tmp_path):
    """sd-scripts' LoRA on SD1.5: 264 modules, 792 tensors (measured), its metadata read back."""
    real = recorded("lora")
    path = write_lora(tmp_path / "tiny_lora.safetensors", "lora", dim=4, metadata=real["metadata"])
    info = read_lora(path)
    assert info.network == "LoRA" and info.algo == "lora" and info.module == "networks.lora"
    assert len(info.modules) == 264 and info.tensors == real["n_tensors"] == 792
    assert info.parts == {"text_encoder": 72, "unet": 192}
    assert info.ranks == {4: 264} and info.alphas == {1.0: 264} and info.conv_modules == 0
    assert info.dtypes == {"F32": 792}
    assert abs(info.size - real["bytes"]) < 8192  # the metadata here is the same; the header is not padded alike
    assert info.base == {
        "name": "sd15_random_fp16.safetensors",
        "hash": "6d71149f",
        "sha256": "533e22760220bef9a63e82377360520e3b4ab8af20e27f108a27d57cf8ad0163",
        "version": "sd_v1",
        "architecture": "stable-diffusion-v1/lora",
        "family": "sd15",
    }
    assert info.training["num_epochs"] == "2" and info.training["steps"] == real["metadata"]["ss_steps"]
    assert info.dataset_dirs == {"10_testsubject": {"n_repeats": 10, "img_count": 6}}
    assert info.top_tags[0] == ("testsubject", 6)


@pytest.mark.parametrize(
    ("recorded_as", "network", "expected", "modules"),
    [("dylora", "dylora", "DyLoRA", 264), ("locon", "locon", "LoCon", 354), ("loha", "loha", "LoHa", 354)],
)
def test_each_network_is_told_by_its_keys_and_metadata(tmp_path, recorded_as, network, expected, modules):
    real = recorded(recorded_as)
    conv = 4 if network != "dylora" else None
    path = write_lora(tmp_path / "x.safetensors", network, dim=4, conv_dim=conv, metadata=real["metadata"])
    info = read_lora(path)
    assert info.network == expected and len(info.modules) == modules
    assert info.tensors == real["n_tensors"] or recorded_as == "loha"  # loha's recorded count is per suffix
    assert set(info.ranks) == {4}


def test_networks_without_metadata_are_told_by_key_names(tmp_path):
    """A file stripped of metadata (--no_metadata, or another trainer): the key names still say it."""
    cases = {
        ("lora", None): "LoRA",
        ("lora", 8): "LoCon",  # sd-scripts' LoRA with conv_dim: 3x3 convolutions too
        ("locon", None): "LoCon",
        ("loha", None): "LoHa",
        ("lokr", None): "LoKr",
    }
    for (network, conv_dim), expected in cases.items():
        path = write_lora(tmp_path / f"{network}{conv_dim}.safetensors", network, dim=8, conv_dim=conv_dim)
        info = read_lora(path)
        assert info.network == expected, (network, conv_dim)
        assert info.module is None
        assert info.base.get("family") == ("sd15" if network != "lokr" else None)  # LoKr's factors hide the width


def test_lokr_ranks_and_full_factors(tmp_path):
    """LoKr keeps w2 low-rank (lokr_w2_a/b) for small dims and whole (lokr_w2) when the dim is large."""
    small = read_lora(write_lora(tmp_path / "s.safetensors", "lokr", dim=4))
    assert small.network == "LoKr" and 4 in small.ranks
    large = read_lora(write_lora(tmp_path / "l.safetensors", "lokr", dim=100000))
    assert set(large.ranks) == {None}


def test_sdxl_text_encoders_and_varying_ranks(tmp_path):
    """SDXL names its encoders lora_te1_/lora_te2_; per-module ranks and alphas are summarised."""
    from artlab_kohya.models.netsize import tensor_shapes

    shapes = dict(tensor_shapes("sdxl", "lora", dim=8))
    alphas = {}
    for key in list(shapes):
        if key.startswith("lora_te2_") and key.endswith("lora_down.weight"):
            shapes[key] = (2, shapes[key][1])
            up = key.replace("lora_down", "lora_up")
            shapes[up] = (shapes[up][0], 2)
            alphas[key.replace("lora_down.weight", "alpha")] = 0.5
    info = read_lora(write_safetensors(tmp_path / "xl.safetensors", shapes, alphas=alphas, dtype="BF16"))
    assert set(info.parts) == {"unet", "text_encoder_1", "text_encoder_2"}
    assert info.ranks[8] > 0 and info.ranks[2] == info.parts["text_encoder_2"]
    assert info.alphas[0.5] == info.parts["text_encoder_2"] and info.alphas[1.0] > 0
    assert info.base == {"family": "sdxl"} and info.dtypes == {"BF16": len(shapes)}


def test_lycoris_only_algorithms(tmp_path):
    """IA3 (`weight` + `on_input`), GLoRA (a1/a2/b1/b2), diag-OFT and BOFT (`oft_blocks`, 3 or 4 dims),
    full fine-tuning (`diff`): lycoris-lora 3.4.0's key names."""
    name = "lora_unet_mid_block_attentions_0_proj_in"
    files = {
        "IA3": {f"{name}.weight": (320,), f"{name}.on_input": ()},
        "GLoRA": {
            f"{name}.a1.weight": (4, 320),
            f"{name}.a2.weight": (320, 4),
            f"{name}.b1.weight": (4, 320),
            f"{name}.b2.weight": (320, 4),
            f"{name}.alpha": (),
        },  # fmt: skip
        "Diag-OFT": {f"{name}.oft_blocks": (4, 80, 80), f"{name}.alpha": ()},
        "BOFT": {f"{name}.oft_blocks": (2, 4, 80, 80), f"{name}.alpha": ()},
        "full fine-tuning (LyCORIS)": {f"{name}.diff": (320, 320)},
    }
    for expected, shapes in files.items():
        info = read_lora(write_safetensors(tmp_path / "x.safetensors", shapes))
        assert info.network == expected
    glora = read_lora(write_safetensors(tmp_path / "g.safetensors", files["GLoRA"]))
    assert glora.ranks == {4: 1}
    dora = dict(files["GLoRA"])
    dora = {f"{name}.lora_down.weight": (4, 320), f"{name}.lora_up.weight": (320, 4), f"{name}.dora_scale": (1, 320)}
    assert read_lora(write_safetensors(tmp_path / "d.safetensors", dora)).dora


def test_not_a_lora_and_not_safetensors(tmp_path):
    model = write_safetensors(tmp_path / "m.safetensors", {"model.diffusion_model.x.weight": (4, 4)})
    with pytest.raises(ModelError, match="is not a LoRA"):
        read_lora(model)
    (tmp_path / "x.ckpt").write_bytes(b"PK")
    with pytest.raises(ModelError, match="only .safetensors"):
        read_lora(tmp_path / "x.ckpt")
    (tmp_path / "bad.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ModelError):
        read_lora(tmp_path / "bad.safetensors")


def test_lora_info_command(tmp_path):
    path = write_lora(tmp_path / "tiny.safetensors", "locon", dim=4, conv_dim=4, metadata=recorded("locon")["metadata"])
    result = CliRunner().invoke(main, ["lora", "info", str(path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "network     LoCon (lycoris.kohya)" in out
    assert "modules     354: text encoder 72, U-Net 282" in out
    assert "rank        4 (all 354 modules)" in out and "alpha       1 (all 354 modules)" in out
    assert "base model  sd15_random_fp16.safetensors, hash 6d71149f" in out
    assert "10_testsubject: 6 images x 3 repeats" in out and "top tags    testsubject (6)" in out
    result = CliRunner().invoke(main, ["lora", "info", str(path), "--json"])
    data = json.loads(result.stdout)
    assert data["network"] == "LoCon" and data["ranks"] == [{"value": 4, "modules": 354}]
    assert data["metadata"]["ss_network_module"] == "lycoris.kohya" and data["parts"]["unet"] == 282
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nothing")
    result = CliRunner().invoke(main, ["lora", "info", str(bad)])
    assert result.exit_code == 1 and "not a safetensors file" in result.stderr
