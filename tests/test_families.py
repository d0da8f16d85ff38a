"""One family resolver: plan, render and run decide the same family for every alias and every file.

A plan and a render once resolved the `sd2` alias to different families (`sd2` and `sd2-v`); here each
of the three paths is asked about the same spec, with real files (local, and in a hub cache on disk).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_hub import SD2, SD15, SDXL, write_safetensors

from artlab_kohya.build.inputs import model_for_render
from artlab_kohya.build.plan import plan_family
from artlab_kohya.models.hub import resolve_alias, resolve_local
from artlab_kohya.run.train import concrete_family
from artlab_kohya.spec import load_spec
from artlab_kohya.spec.families import ALIASES, FAMILIES, FAMILY_INFO, architecture

FLUX1 = {
    "double_blocks.0.img_attn.qkv.weight": ("F16", [9, 3]),
    "single_blocks.0.linear1.weight": ("F16", [21, 3]),
    "guidance_in.in_layer.bias": ("F16", [3]),
}
SD3 = {
    "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": ("F16", [9, 3]),
    "model.diffusion_model.joint_blocks.0.context_block.attn.qkv.weight": ("F16", [9, 3]),
    "model.diffusion_model.joint_blocks.0.context_block.attn.ln_k.weight": ("F16", [3]),
}
TENSORS = {"sd15": SD15, "sd2": SD2, "sdxl": SDXL, "flux1": FLUX1, "sd3": SD3}
V_FAMILY = {"sd2": "sd2-v", "sdxl": "sdxl-v"}  # what the spec's v_parameterization makes of an auto-detected file
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _spec(tmp_path: Path, source: str, family: str = "auto", v_parameterization: bool = False):
    (tmp_path / "img/10_x").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "spec.yaml"
    path.write_text(
        f"model:\n  source: {source}\n  family: {family}\n  v_parameterization: {str(v_parameterization).lower()}\n"
        "dataset:\n  subsets:\n    - path: img/10_x\nnetwork:\n  type: lora\n  dim: 8\n  alpha: 4\n"
    )
    return load_spec(path)


def _three_ways(loaded, resolved) -> tuple[str | None, str | None, str | None]:
    return plan_family(loaded.spec), model_for_render(loaded).family, concrete_family(loaded.spec, resolved)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """Every alias's files (FLUX.1's and SD3's text encoders too) in a Hugging Face cache on disk, as a
    download would leave them (offline)."""
    cache = tmp_path / "hf"

    def put(repo_id: str, filename: str, tensors: dict) -> None:
        repo = cache / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(COMMIT)
        (repo / "snapshots" / COMMIT / filename).parent.mkdir(parents=True, exist_ok=True)
        write_safetensors(repo / "snapshots" / COMMIT / filename, tensors)

    for alias in ALIASES.values():
        put(alias.repo, alias.filename, TENSORS[architecture(alias.family)])
        for part in alias.components.values():
            put(part.repo, part.filename, {"w": ("F16", [1])})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "artlab"))
    return cache


@pytest.mark.parametrize("name", list(ALIASES))
@pytest.mark.parametrize("v_parameterization", [False, True])
def test_every_alias_resolves_the_same_in_plan_render_and_run(tmp_path, hub_cache, name, v_parameterization):
    loaded = _spec(tmp_path, name, v_parameterization=v_parameterization)
    resolved = resolve_alias(name, offline=True)
    assert _three_ways(loaded, resolved) == (ALIASES[name].family,) * 3


def test_the_sd2_alias_is_the_768_v_model(tmp_path, hub_cache):
    loaded = _spec(tmp_path, "sd2")
    assert set(_three_ways(loaded, resolve_alias("sd2", offline=True))) == {"sd2-v"}
    assert FAMILY_INFO["sd2-v"].v_prediction and FAMILY_INFO["sd2-v"].v2


@pytest.mark.parametrize("arch", list(TENSORS))
@pytest.mark.parametrize("v_parameterization", [False, True])
def test_every_local_file_resolves_the_same(tmp_path, monkeypatch, arch, v_parameterization):
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "artlab"))
    write_safetensors(tmp_path / "base.safetensors", TENSORS[arch])
    loaded = _spec(tmp_path, "base.safetensors", v_parameterization=v_parameterization)
    found = _three_ways(loaded, resolve_local(tmp_path / "base.safetensors"))
    expected = V_FAMILY.get(arch, arch) if v_parameterization else arch
    assert found == (expected,) * 3


@pytest.mark.parametrize("arch", ["sd2", "sdxl"])
def test_a_file_whose_metadata_says_v_is_trained_as_v_everywhere(tmp_path, monkeypatch, arch):
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "artlab"))
    write_safetensors(tmp_path / "base.safetensors", TENSORS[arch], {"modelspec.prediction_type": "v"})
    for family in ("auto", arch):
        loaded = _spec(tmp_path, "base.safetensors", family=family)
        assert _three_ways(loaded, resolve_local(tmp_path / "base.safetensors")) == (V_FAMILY[arch],) * 3


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_the_spec_names_wins_everywhere(tmp_path, monkeypatch, family):
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "artlab"))
    write_safetensors(tmp_path / "base.safetensors", SD15)
    loaded = _spec(tmp_path, "base.safetensors", family=family)
    assert _three_ways(loaded, resolve_local(tmp_path / "base.safetensors")) == (family,) * 3
