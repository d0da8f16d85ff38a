"""The files a spec names, checked on this disk before anything launches (spec/rules.py check_files):
`check`, `plan` and `run` report a missing base model at model.source, with the form probably meant."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from artlab_kohya.cli.main import main
from artlab_kohya.spec import load_spec

SPEC = """\
model:
  source: {source}
  family: sd15
dataset:
  subsets:
    - path: img/10_sks
network:
  type: lora
"""


@pytest.fixture
def project(tmp_path, images):
    images(tmp_path / "img/10_sks", [(512, 512)] * 16)
    return tmp_path


def spec_with(project: Path, source: str) -> Path:
    path = project / "spec.yaml"
    path.write_text(SPEC.format(source=source), encoding="utf-8")
    return path


def check(path: Path, *args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["check", str(path), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr.splitlines()


def model_errors(path: Path) -> list[str]:
    return [str(i) for i in load_spec(path).file_issues()]


def test_a_local_model_that_does_not_exist(project):
    path = spec_with(project, "models/base.safetensors")
    code, err = check(path)
    assert code == 2
    assert err[0] == (
        f"spec.yaml:2: model.source: {project}/models/base.safetensors does not exist (a checkpoint file or a "
        "diffusers folder; relative paths start at the spec's folder)"
    )
    (project / "models").mkdir()
    (project / "models/base.safetensors").write_bytes(b"")
    assert check(path)[0] == 0


def test_an_alias_typo_suggests_the_alias(project):
    for typo, alias in (("sd-15", "sd15"), ("SDXL", "sdxl"), ("sd_xl", "sdxl"), ("sd1.5", "sd15"), ("sd21", "sd2")):
        assert model_errors(spec_with(project, typo)) == [
            f"spec.yaml:2: model.source: no file '{typo}' next to the spec; did you mean {alias} "
            "(one of the aliases sd15, sdxl, sd2, flux1-dev, flux1-schnell, sd3-medium, sd3.5-medium, sd3.5-large)?"
        ]


def test_a_hub_repository_written_as_a_path_suggests_the_hub_form(project):
    assert model_errors(spec_with(project, "stabilityai/stable-diffusion-xl-base-1.0")) == [
        "spec.yaml:2: model.source: 'stabilityai/stable-diffusion-xl-base-1.0' is not a file next to the spec; "
        "for a Hugging Face hub repository write {type: hub, repo: stabilityai/stable-diffusion-xl-base-1.0, "
        "file: <file>.safetensors}"
    ]
    (project / "stabilityai/stable-diffusion-xl-base-1.0").mkdir(parents=True)  # a diffusers folder here
    assert model_errors(spec_with(project, "stabilityai/stable-diffusion-xl-base-1.0")) == []


def test_aliases_hub_sources_and_existing_files_pass(project):
    assert model_errors(spec_with(project, "sd15")) == []
    assert model_errors(spec_with(project, "{type: hub, repo: a/b, file: m.safetensors}")) == []
    (project / "base.safetensors").write_bytes(b"")
    assert model_errors(spec_with(project, "base.safetensors")) == []


def test_vae_and_network_weights_are_checked_too(project):
    path = spec_with(project, "sd15")
    path.write_text(
        path.read_text().replace("family: sd15", "family: sd15\n  vae: vae.safetensors")
        + "  weights: old.safetensors\n"
    )
    assert model_errors(path) == [
        f"spec.yaml:4: model.vae: {project}/vae.safetensors does not exist",
        f"spec.yaml:10: network.weights: {project}/old.safetensors does not exist",
    ]


def test_plan_reports_the_model_with_the_dataset(project):
    path = spec_with(project, "sd-15")
    path.write_text(path.read_text().replace("img/10_sks", "img/10_gone"))
    result = CliRunner().invoke(main, ["plan", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("spec.yaml:2: model.source: no file 'sd-15'")
    assert lines[1].startswith("spec.yaml:6: dataset.subsets[0].path:") and lines[2].startswith("2 error(s)")


def test_a_set_override_of_the_source_is_located_at_the_set(project):
    code, err = check(spec_with(project, "sd15"), "--set", "model.source=sd-15")
    assert code == 2 and err[0] == "override: model.source = 'sd-15' (was 'sd15')"
    assert err[1].startswith("--set model.source=sd-15: model.source: no file 'sd-15'")


def test_run_stops_before_launching_even_with_ignore_dataset_errors(project):
    path = spec_with(project, "gone.safetensors")
    argv = [sys.executable, "-m", "artlab_kohya", "run", str(path), "--plain", "--ignore-dataset-errors"]
    env = {**os.environ, "ARTLAB_KOHYA_CACHE": str(project / "cache")}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, cwd=project)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("spec.yaml:2: model.source: ") and "not launching" in result.stderr
    assert not (project / "runs").exists()
