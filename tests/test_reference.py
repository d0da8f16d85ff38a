"""`artlab-kohya schema` and `explain`: the JSON Schema accepts what validation accepts, checked with a
real JSON Schema validator; explain prints plain text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from artlab_kohya.cli.main import main
from artlab_kohya.experiments.matrix import expand
from artlab_kohya.spec import SpecError
from artlab_kohya.spec.load import load_spec_text
from artlab_kohya.spec.presets import PRESETS, render_preset
from artlab_kohya.spec.reference import json_schema
from artlab_kohya.spec.yamlpos import load_with_lines

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(validator: Draft202012Validator, text: str) -> list[str]:
    data, _ = load_with_lines(text)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


def assert_both_accept(validator: Draft202012Validator, text: str, where: Path) -> None:
    load_spec_text(text, where)  # validation accepts it ...
    assert schema_errors(validator, text) == []  # ... so the schema must too


def readme_spec() -> str:
    readme = (HERE.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## A spec\n", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match, "README: no ```yaml block under '## A spec'"
    return match.group(1)


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("vram", [None, 4.0, 12.0])
def test_schema_accepts_every_init_spec(validator, tmp_path, preset, vram):
    assert_both_accept(validator, render_preset(preset, "sks", vram), tmp_path / "spec.yaml")


@pytest.mark.parametrize("path", sorted((HERE / "specs").glob("*.yaml")), ids=lambda p: p.name)
def test_schema_accepts_the_golden_specs(validator, path):
    assert_both_accept(validator, path.read_text(encoding="utf-8"), path)


def test_schema_accepts_the_readme_spec(validator, tmp_path):
    assert_both_accept(validator, readme_spec(), tmp_path / "spec.yaml")


MINIMAL = "dataset:\n  subsets:\n    - path: img/10_sks\nnetwork:\n  type: lora\n"


@pytest.mark.parametrize(
    "model",
    [
        "source: sd15",
        "source: sdxl",
        "source: models/base.safetensors",
        "source: /models/base.safetensors",
        "source: {type: alias, name: sd2}",
        "source: {type: local, path: base.safetensors}",
        "source: {type: hub, repo: a/b, file: m.safetensors}",
        "source: {type: hub, repo: a/b, file: m.safetensors, revision: abc}\n  family: sd2-v\n  clip_skip: 2",
    ],
)
def test_schema_accepts_every_form_of_model_source(validator, tmp_path, model):
    assert_both_accept(validator, f"model:\n  {model}\n" + MINIMAL, tmp_path / "spec.yaml")


def test_schema_accepts_variants_and_unions(validator, tmp_path):
    text = (
        "model: {source: sd15}\n"
        "dataset:\n  resolution: [768, 512]\n  subsets:\n    - {path: a, repeats: auto}\n    - {path: b, repeats: 3}\n"
        "network: {type: lokr, dim: 8, factor: 4, args: {x: 1}}\n"
        "optimizer: {type: torch.optim.RMSprop, args: {betas: [0.9, 0.99], foo: bar}}\n"
        "training: {epochs: null, max_steps: 100}\n"
        "kohya: {extra_args: {token_warmup_step: 10}}\n"
    )
    assert_both_accept(validator, text, tmp_path / "spec.yaml")


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("model: {source: sd15}\n" + MINIMAL + "network2: {}\n", ""),  # unknown key
        ("model: {source: sd15}\n" + MINIMAL.replace("type: lora", "type: lorra"), "network"),
        ("model: {source: sd15}\n" + MINIMAL.replace("type: lora", "type: lora\n  dim: 0"), "network"),
        ("model: {source: 15}\n" + MINIMAL, "model.source"),
        ("model: {source: ''}\n" + MINIMAL, "model.source"),
        ("model: {source: {type: hub, repo: a/b}}\n" + MINIMAL, "model.source"),
        ("model: {source: sd15}\n" + MINIMAL + "training: {epochs: '10'}\n", "training.epochs"),
        ("model: {source: sd15}\n" + MINIMAL + "training: {epochs: 100000}\n", "training.epochs"),
        ("network: {type: lora}\n", ""),  # model and dataset missing
    ],
)
def test_schema_rejects_bad_specs(validator, tmp_path, text, at):
    with pytest.raises(SpecError):
        load_spec_text(text, tmp_path / "spec.yaml")
    errors = schema_errors(validator, text)
    assert errors and any(e.startswith(f"{at}:") or (at and e.startswith(f"{at}.")) for e in errors), errors


def readme_matrix() -> str:
    section = (HERE.parent / "README.md").read_text(encoding="utf-8").split("### Sweeps: a spec's `matrix:`", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match, "README: no ```yaml block under 'Sweeps'"
    return match.group(1)


@pytest.mark.parametrize(
    "matrix",
    [
        readme_matrix(),
        "matrix:\n  dataset.subsets[0].repeats: [2, 4]\n  dataset.resolution: [512, [768, 512]]\n",
        "matrix:\n  zip:\n    - {network.dim: [8, 16], network.alpha: [4, 8]}\n    - {training.seed: [1, 2], optimizer.unet_lr: [1.0e-4, 2.0e-4]}\n",
    ],
    ids=["readme", "axes", "zip groups"],
)
def test_schema_accepts_a_sweeps_matrix(validator, tmp_path, matrix):
    """`matrix:` is no field of Spec (load.py takes it out first), but a spec may carry it: so may the schema."""
    text = "model: {source: sd15}\n" + MINIMAL + matrix
    loaded = load_spec_text(text, tmp_path / "spec.yaml")
    assert expand(loaded) is not None  # the sweep reads it ...
    assert schema_errors(validator, text) == []  # ... and the schema accepts it


@pytest.mark.parametrize(
    "matrix",
    [
        "matrix: {network.dim: 32}\n",  # not a list
        "matrix: {network.dim: []}\n",  # no values
        "matrix: {}\n",
        "matrix:\n  zip: {network.dim: [8, 16]}\n",  # a group of one list
        "matrix: [network.dim]\n",
    ],
)
def test_schema_rejects_what_the_sweep_rejects(validator, tmp_path, matrix):
    text = "model: {source: sd15}\n" + MINIMAL + matrix
    with pytest.raises(SpecError):
        expand(load_spec_text(text, tmp_path / "spec.yaml"))
    assert any(e.startswith("matrix") for e in schema_errors(validator, text))


def test_the_readme_error_examples_are_what_validation_prints(tmp_path):
    """README's example errors are the spec under '## A spec' with the mistakes the text names, then that
    spec with its `--set`: the lines must be what validation says of them, word for word."""
    section = (HERE.parent / "README.md").read_text(encoding="utf-8").split("### Errors and warnings", 1)[1]
    match = re.search(r"```\n(.*?)```", section, re.DOTALL)
    assert match, "README: no example block under 'Errors and warnings'"
    good = readme_spec()
    bad = good.replace("batch_size: 4", "batch_size: 0", 1).replace("type: lora ", "type: lorra ", 1)
    bad = bad.replace("\ntraining:\n", "\ntraining:\n  learning_rate: 1.0e-4\n", 1)
    printed = []
    for text, overrides in ((bad, []), (good, ["network.dim=0"])):
        with pytest.raises(SpecError) as caught:
            load_spec_text(text, tmp_path / "spec.yaml", overrides)
        printed += [str(issue) for issue in caught.value.issues]
    assert match.group(1).splitlines() == printed


def test_explain_prints_plain_text_without_markdown_escapes():
    result = CliRunner().invoke(main, ["explain", "network"])
    assert result.exit_code == 0
    assert "\\|" not in result.stdout
    assert "network.type: lora | dylora | locon | loha | lokr" in result.stdout
    result = CliRunner().invoke(main, ["explain", "training.mixed_precision"])
    assert result.stdout.startswith("training.mixed_precision: no | fp16 | bf16 (default: bf16)")
    markdown = CliRunner().invoke(main, ["explain", "--markdown"]).stdout
    assert "| `training.mixed_precision` | no \\| fp16 \\| bf16 | bf16 |" in markdown
