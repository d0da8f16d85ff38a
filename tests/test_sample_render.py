"""The spec's sample: section as sd-scripts reads it: sample_prompts pointing at the rendered
prompts.txt, sample_every_n_epochs / _steps, the sampler, sample_at_first; prompts numbered as
sd-scripts numbers them (its sample file names carry that number)."""

from __future__ import annotations

from pathlib import Path

import pytest

from artlab_kohya.build.inputs import render_for
from artlab_kohya.build.tomlio import tomllib
from artlab_kohya.spec import SpecError, load_spec
from artlab_kohya.trainer.install import Install

INSTALL = Install(dir=Path("/opt/sd-scripts"), python="/opt/venv/bin/python")
BASE = (
    "model:\n  source: base.safetensors\n  family: sd15\n"
    "dataset:\n  subsets:\n    - path: img/10_sks\n"
    "network:\n  type: lora\n"
)


def render(tmp_path: Path, sample: str) -> tuple[dict, str | None]:
    (tmp_path / "base.safetensors").write_bytes(b"")
    spec = tmp_path / "spec.yaml"
    spec.write_text(BASE + sample)
    rendered, _ = render_for(load_spec(spec), tmp_path / "out", INSTALL)
    config = tomllib.loads(rendered.config_toml)
    return config.get("sample_arguments", {}), rendered.prompts_txt


def sd_scripts_prompts(prompts_txt: str) -> list[str]:
    """sd-scripts' own reading of a .txt prompt file (train_util.sample_images_common)."""
    lines = prompts_txt.splitlines(keepends=True)
    return [line.strip() for line in lines if len(line.strip()) > 0 and line[0] != "#"]


def test_every_n_epochs(tmp_path):
    sample = (
        'sample:\n  prompts:\n    - "sks dog --n lowres --w 512 --h 512 --s 2"\n    - "sks cat"\n  every_n_epochs: 2\n'
    )
    args, prompts = render(tmp_path, sample)
    assert args == {
        "sample_prompts": str(tmp_path / "out" / "prompts.txt"),
        "sample_every_n_epochs": 2,
        "sample_sampler": "euler_a",
    }
    assert prompts == "sks dog --n lowres --w 512 --h 512 --s 2\nsks cat\n"
    assert sd_scripts_prompts(prompts) == ["sks dog --n lowres --w 512 --h 512 --s 2", "sks cat"]


def test_every_n_steps_at_first_and_sampler(tmp_path):
    sample = "sample:\n  prompts: [a dog]\n  every_n_steps: 100\n  at_first: true\n  sampler: ddim\n"
    args, prompts = render(tmp_path, sample)
    assert args == {
        "sample_prompts": str(tmp_path / "out" / "prompts.txt"),
        "sample_every_n_steps": 100,
        "sample_sampler": "ddim",
        "sample_at_first": True,
    }
    assert prompts == "a dog\n"


def test_no_prompts_no_sample_arguments(tmp_path):
    args, prompts = render(tmp_path, "")
    assert args == {} and prompts is None


@pytest.mark.parametrize("bad", ['""', '"# not a prompt"', '"two\\nlines"', '"   "'])
def test_a_prompt_sd_scripts_would_skip_or_split_is_refused(tmp_path, bad):
    (tmp_path / "spec.yaml").write_text(BASE + f"sample:\n  prompts:\n    - ok\n    - {bad}\n  every_n_epochs: 1\n")
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "spec.yaml")
    (issue,) = caught.value.issues
    assert str(issue).startswith("spec.yaml:12: sample.prompts[1]: a sample prompt is one line of text")
