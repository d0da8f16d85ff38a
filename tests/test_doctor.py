"""`artlab-kohya doctor` and the smoke assets (doctor.py, cli_doctor.py).

CI runs the report against fake installs and trainer environments (tests/kohya_fakes.py); the
`engine` test builds the real random-initialised checkpoint and loads it with sd-scripts' own loader.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from kohya_fakes import OTHER_COMMIT, PINNED, TESTED_PACKAGES, fake_sd_scripts, fake_trainer

from artlab_kohya.cli.doctor import doctor
from artlab_kohya.models.checkpoint import detect_family
from artlab_kohya.trainer.doctor import (
    CLIP_L_FOLDER,
    Check,
    environment_checks,
    print_report,
    run_doctor,
    smoke_assets,
    smoke_precision,
    smoke_spec_yaml,
    write_smoke_project,
    write_toy_clip_tokenizer,
)
from artlab_kohya.trainer.install import Install, InstallError, locate_install

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))


def statuses(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.status for c in checks}


def details(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.detail for c in checks}


# --------------------------------------------------------------------------- the report


def test_a_tested_install_on_a_gpu_is_ready(tmp_path):
    install = locate_install(fake_sd_scripts(tmp_path / "sd"), fake_trainer(tmp_path / "env"))
    result = run_doctor(install)
    assert not result.failed
    found = statuses(result.checks)
    assert set(found.values()) == {"ok"}, result.checks
    assert list(found)[:4] == ["artlab-kohya", "sd-scripts", "sd-scripts commit", "trainer Python"]
    text = details(result.checks)
    assert text["sd-scripts commit"] == "48d368fa, the commit we test against"
    assert text["GPU 0"] == "NVIDIA H100 80GB HBM3, 79.6 GiB, compute capability 9.0"
    assert text["CUDA"] == "CUDA 13.0, 1 GPU(s); bf16 yes"
    assert text["torch"] == "2.14.1+cu130 (2.x, as we test)"
    assert text["argument surface"].endswith("193 arguments, the same as at the commit we test against")
    assert result.surface_options == 193
    assert smoke_precision(result.versions) == "bf16"


def test_cpu_only_untested_commit_and_lycoris_4(tmp_path):
    packages = dict(TESTED_PACKAGES, **{"lycoris-lora": "4.1.3", "accelerate": "1.7.0"})
    python = fake_trainer(tmp_path / "env", packages, cuda=None, gpus=[])
    result = run_doctor(locate_install(fake_sd_scripts(tmp_path / "sd", commit=OTHER_COMMIT), python))
    found, text = statuses(result.checks), details(result.checks)
    assert (
        found["sd-scripts commit"] == "warn"
        and "01234567: untested; we test against 48d368fa" in text["sd-scripts commit"]
    )
    assert found["CUDA"] == "warn" and text["CUDA"].startswith("CPU-only torch build")
    assert found["accelerate"] == "warn"
    assert found["lycoris-lora"] == "fail" and "FAILS on SD1.x" in text["lycoris-lora"]
    assert result.failed
    assert "argument surface" not in found  # not asked of an environment that already failed
    assert smoke_precision(result.versions) == "no"


def test_a_cuda_build_that_sees_no_gpu_and_an_old_gpu_without_bf16(tmp_path):
    sd = fake_sd_scripts(tmp_path / "sd")
    blind = run_doctor(locate_install(sd, fake_trainer(tmp_path / "a", gpus=[])), surface=False)
    assert "CUDA 13.0 build but sees no GPU" in details(blind.checks)["CUDA"]
    old = {"name": "Tesla T4", "total_memory": 15_828_320_256, "major": 7, "minor": 5}
    small = {"name": "GTX 1650", "total_memory": 4_294_967_296, "major": 7, "minor": 5}
    t4 = run_doctor(locate_install(sd, fake_trainer(tmp_path / "b", gpus=[old, small], bf16=False)), surface=False)
    found, text = statuses(t4.checks), details(t4.checks)
    assert found["GPU 0"] == "ok" and found["GPU 1"] == "warn" and "below 6 GB" in text["GPU 1"]
    assert found["bf16"] == "warn" and "fp16" in text["bf16"]
    assert smoke_precision(t4.versions) == "fp16"


def test_no_torch_in_the_trainer_environment(tmp_path):
    packages = {k: v for k, v in TESTED_PACKAGES.items() if k != "torch"}
    result = run_doctor(locate_install(fake_sd_scripts(tmp_path / "sd"), fake_trainer(tmp_path / "env", packages)))
    found, text = statuses(result.checks), details(result.checks)
    assert found["torch"] == "fail" and "cannot import torch" in text["torch"]
    assert "CUDA" not in found


def test_a_surface_that_differs_from_the_tested_commit(tmp_path):
    small = {"network_dim": {"type": "int", "nargs": None, "choices": None, "default": None}}
    install = locate_install(fake_sd_scripts(tmp_path / "sd", options=small), fake_trainer(tmp_path / "env"))
    check = run_doctor(install).checks[-1]
    assert check.name == "argument surface" and check.status == "warn"
    assert "1 arguments; against the tested commit missing: " in check.detail and " ..." in check.detail


def test_a_real_gpu_machine_with_the_wrong_stack():
    """tests/data/trainer_versions_h200.json: probe_versions.py as it ran on an H200 machine's stock Python."""
    versions = json.loads((HERE / "data" / "trainer_versions_h200.json").read_text())
    checks = environment_checks(Install(Path("/sd"), versions["executable"]), versions)
    found, text = statuses(checks), details(checks)
    assert text["GPU 0"] == "NVIDIA H200, 139.8 GiB, compute capability 9.0"
    assert text["CUDA"] == "CUDA 13.0, 1 GPU(s); bf16 yes"
    assert found["transformers"] == "fail" and "CLIPFeatureExtractor" in text["transformers"]
    assert found["diffusers"] == "fail" and text["diffusers"] == "not installed; sd-scripts needs diffusers"
    assert found["accelerate"] == "ok" and found["huggingface-hub"] == "warn"
    assert smoke_precision(versions) == "bf16"


def test_a_broken_install_stops_the_report_early(tmp_path):
    result = run_doctor(Install(tmp_path / "gone", sys.executable))
    assert [c.name for c in result.checks] == ["artlab-kohya", "sd-scripts"]
    assert result.failed and "does not exist" in result.checks[-1].detail
    sd = fake_sd_scripts(tmp_path / "sd")
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'Fatal Python error: init_fs_encoding' >&2\nexit 1\n")
    broken.chmod(0o755)
    result = run_doctor(Install(sd, str(broken), PINNED))
    assert result.checks[-1].name == "trainer Python" and result.checks[-1].status == "fail"
    assert "failed (exit status 1): Fatal Python error: init_fs_encoding" in result.checks[-1].detail


def test_print_report():
    from rich.console import Console

    out = io.StringIO()
    checks = [
        Check("torch", "ok", "2.14.1"),
        Check("lycoris-lora", "fail", "4.1.3 [FAILS]"),
        Check("CUDA", "warn", "no"),
    ]
    print_report(checks, Console(file=out, width=120, color_system=None))
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["✓", "torch", "2.14.1"]
    assert lines[1].split() == ["✗", "lycoris-lora", "4.1.3", "[FAILS]"]  # markup in details is escaped
    assert lines[-1] == "not ready: 1 failure(s), 1 warning(s)"


# --------------------------------------------------------------------------- the command


def test_doctor_command(tmp_path, monkeypatch):
    sd = fake_sd_scripts(tmp_path / "sd")
    python = fake_trainer(tmp_path / "env")
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(doctor, ["--kohya-dir", str(sd), "--python", python])
    assert result.exit_code == 0, result.output
    assert "ready: 0 failure(s), 0 warning(s)" in result.output
    result = CliRunner().invoke(doctor, ["--kohya-dir", str(sd), "--python", python, "--json"])
    data = json.loads(result.stdout)
    assert data["install"] == {"dir": str(sd), "python": python, "commit": PINNED}
    assert data["versions"]["packages"]["accelerate"] == "1.6.0"
    result = CliRunner().invoke(doctor, ["--kohya-dir", str(tmp_path / "gone")])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_doctor_reads_the_install_from_a_spec(tmp_path, write_spec):
    sd = fake_sd_scripts(tmp_path / "sd")
    python = fake_trainer(tmp_path / "env")
    spec = write_spec(
        f"model: {{source: m.safetensors}}\ndataset: {{subsets: [{{path: img/1_a}}]}}\nnetwork: {{type: lora}}\n"
        f"kohya: {{dir: {sd}, python: {python}}}\n"
    )
    result = CliRunner().invoke(doctor, ["--spec", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["install"]["dir"] == str(sd)
    bad = write_spec("model: {source: m.safetensors}\n", "bad.yaml")
    assert CliRunner().invoke(doctor, ["--spec", str(bad)]).exit_code == 2


def test_the_doctor_command_module_imports_nothing_heavy():
    code = (
        "import sys, artlab_kohya.cli.doctor\n"
        "heavy = [m for m in ('pydantic', 'rich', 'huggingface_hub', 'yaml', 'artlab_kohya.trainer.install') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- smoke assets


def test_toy_tokenizer_layout_and_ids(tmp_path):
    root = write_toy_clip_tokenizer(tmp_path / "tok")
    folder = root / CLIP_L_FOLDER
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408 and len(set(vocab.values())) == 49408
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    assert vocab["!"] == 0 and vocab["a</w>"] == 256 + 64  # CLIP's byte order: "a" is byte symbol 64
    assert (folder / "merges.txt").read_text() == "#version: 0.2\n"
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "CLIPTokenizer" and config["model_max_length"] == 77
    before = (folder / "vocab.json").stat().st_mtime_ns
    assert write_toy_clip_tokenizer(tmp_path / "tok") == root
    assert (folder / "vocab.json").stat().st_mtime_ns == before  # written once


def test_smoke_project_is_a_valid_spec_of_eight_steps(tmp_path):
    from PIL import Image

    from artlab_kohya.build.plan import make_plan
    from artlab_kohya.spec import load_spec

    model = tmp_path / "model.safetensors"
    spec = write_smoke_project(tmp_path / "project", model, "bf16")
    loaded = load_spec(spec)
    assert loaded.spec.training.mixed_precision == "bf16"
    assert loaded.spec.model.source.path == model
    images = sorted((tmp_path / "project" / "img" / "1_smoke").glob("*.png"))
    assert len(images) == 4
    with Image.open(images[0]) as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    assert make_plan(loaded).total_steps == 8
    assert 'mixed_precision: "no"' in smoke_spec_yaml(model)


def _tiny_safetensors(path: Path) -> None:
    header = json.dumps({"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0")


def test_smoke_assets_reuse_a_built_model(tmp_path):
    install = Install(fake_sd_scripts(tmp_path / "sd"), sys.executable, PINNED)
    built = tmp_path / "smoke" / "sd15-random-48d368fa5577.safetensors"
    _tiny_safetensors(built)
    model, tokenizers = smoke_assets(install, tmp_path / "smoke", on_status=pytest.fail)
    assert model == built and (tokenizers / CLIP_L_FOLDER / "vocab.json").is_file()


def test_a_failed_build_says_why_and_leaves_nothing(tmp_path):
    install = locate_install(fake_sd_scripts(tmp_path / "sd"), fake_trainer(tmp_path / "env", {}))
    said = []
    with pytest.raises(InstallError, match="building the smoke model failed: import: No module named 'torch'"):
        smoke_assets(install, tmp_path / "smoke", on_status=said.append)
    assert "once" in said[0]
    assert [p.name for p in (tmp_path / "smoke").iterdir()] == ["tokenizers"]


# --------------------------------------------------------------------------- the real engine


@pytest.mark.engine
def test_real_smoke_assets_load_in_sd_scripts(engine, tmp_path):
    """Builds the 2 GB checkpoint (about 40 s, 9 GB of memory), then loads it with sd-scripts' loader."""
    install = locate_install(engine["ARTLAB_KOHYA_DIR"], engine["ENGINE_PYTHON"])
    model, tokenizers = smoke_assets(install, tmp_path / "smoke")
    assert detect_family(model) == "sd15"
    assert smoke_assets(install, tmp_path / "smoke", on_status=pytest.fail) == (model, tokenizers)
    loaded = subprocess.run(
        [install.python, str(HERE / "engine" / "load_sd15.py"), str(install.dir), str(model)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    result = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert result["classes"] == ["CLIPTextModel", "AutoencoderKL", "UNet2DConditionModel"]
    assert sum(result["params"].values()) == 1_066_235_307  # as shared/kohya/README.md measured
    check = (
        "import sys; from transformers import CLIPTokenizer\n"
        "t = CLIPTokenizer.from_pretrained(sys.argv[1])\n"
        "print(len(t), t.bos_token_id, t.eos_token_id, t.pad_token_id, t('smoke, a photo').input_ids)\n"
    )
    out = subprocess.run(
        [install.python, "-c", check, str(tokenizers / CLIP_L_FOLDER)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    size, bos, eos, pad, ids = out.stdout.split(maxsplit=4)
    assert (size, bos, eos, pad) == ("49408", "49406", "49407", "49407")
    assert ids.startswith("[49406, ") and ids.strip().endswith(", 49407]")


def test_a_trainer_killed_for_memory_says_so(tmp_path):
    sd = fake_sd_scripts(tmp_path / "sd")
    killed = tmp_path / "python"
    killed.write_text("#!/bin/sh\nkill -9 $$\n")
    killed.chmod(0o755)
    with pytest.raises(InstallError, match=r"building the smoke model with .* was killed \(out of memory\?\)"):
        smoke_assets(Install(sd, str(killed), PINNED), tmp_path / "smoke")
