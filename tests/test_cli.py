"""The command line as a user meets it: init -> check -> plan -> render -> schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from artlab_kohya.build.tomlio import tomllib
from artlab_kohya.cli.main import main


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_init_writes_a_commented_spec_and_kohya_folder(tmp_path, images):
    code, out, _ = run("init", "--preset", "person", "--vram", "12", str(tmp_path / "my-lora"))
    assert code == 0, out
    spec = tmp_path / "my-lora/spec.yaml"
    text = spec.read_text()
    assert "batch_size: 6" in text and "12 GB: the guide gives 6 at 12 GB" in text
    assert "clip_skip: 1" in text and "path: img/25_my_lora" in text
    assert (tmp_path / "my-lora/img/25_my_lora").is_dir()
    code, _, err = run("init", "--preset", "person", str(tmp_path / "my-lora"))
    assert code == 1 and "never overwrites" in err


def test_presets_follow_the_guide_table(tmp_path):
    expected = {"anime": ("10_", "clip_skip: 2"), "person": ("25_", "clip_skip: 1"), "object": ("40_", "clip_skip: 1")}
    for preset, (prefix, clip) in expected.items():
        code, _, _ = run("init", "--preset", preset, "--vram", "6", str(tmp_path / preset))
        assert code == 0
        text = (tmp_path / preset / "spec.yaml").read_text()
        assert f"path: img/{prefix}{preset}" in text and clip in text and "batch_size: 4" in text
        assert "dim: 128" in text and "alpha: 64" in text and "epochs: 10" in text
        assert "unet_lr: 1.0e-4" in text and "text_encoder_lr: 5.0e-5" in text


def test_preset_spec_checks_plans_and_renders(tmp_path, images):
    run("init", "--preset", "anime", str(tmp_path / "p"))
    folder = tmp_path / "p"
    images(folder / "img/10_p", [(512, 768)] * 20 + [(768, 512)] * 10)
    (folder / "base.safetensors").write_bytes(b"")
    overrides = ["--set", "model.source=base.safetensors", "--set", "model.family=sd15"]
    code, out, err = run("check", str(folder / "spec.yaml"), *overrides)
    assert code == 0, err
    assert "ok" in out
    code, out, err = run("plan", str(folder / "spec.yaml"), *overrides, "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["subsets"][0]["images"] == 30 and plan["subsets"][0]["repeats"] == 10
    assert plan["saves"][-1] == "p.safetensors" and len(plan["saves"]) == 10
    assert "override: model.family = 'sd15' (was 'auto')" in err
    code, out, err = run("render", str(folder / "spec.yaml"), "-o", str(tmp_path / "out"), *overrides)
    assert code == 0, err
    config = tomllib.loads((tmp_path / "out/config.toml").read_text())
    assert config["model_arguments"]["clip_skip"] == 2
    assert "accelerate.commands.launch" in out and out.strip().endswith(str(tmp_path / "out/config.toml"))


def test_spec_errors_exit_2_with_located_lines(write_spec):
    path = write_spec("model:\n  source: x\ndataset:\n  subsets: []\nnetwork:\n  type: lora\n  dim: 0\n")
    for command in ("check", "plan"):
        code, out, err = run(command, str(path))
        assert code == 2
        assert err.splitlines() == [
            "spec.yaml:4: dataset.subsets: must have at least 1 item(s) (got a list of 0)",
            "spec.yaml:7: network.dim: must be at least 1 (got 0)",
            f"2 error(s) in {path}",
        ]
        assert "Traceback" not in out + err


def test_dataset_errors_exit_2(write_spec):
    path = write_spec(
        "model:\n  source: x\n  family: sd15\ndataset:\n  subsets:\n    - path: nowhere\nnetwork:\n  type: lora\n"
    )
    (path.parent / "x").write_bytes(b"")  # check looks for the base model too; here only the dataset is wrong
    code, _, err = run("check", str(path))
    assert code == 2 and "spec.yaml:6: dataset.subsets[0].path:" in err and "does not exist" in err


def test_schema_and_explain():
    code, out, _ = run("schema")
    schema = json.loads(out)
    assert code == 0 and schema["title"] == "artlab-kohya spec" and "network" in schema["properties"]
    code, out, _ = run("explain", "network.dim")
    assert code == 0 and out.startswith("network.dim: int (default: lora: 128")
    code, out, _ = run("explain", "dataset.subsets")
    assert "dataset.subsets[].repeats" in out
    code, _, err = run("explain", "nope")
    assert code == 2 and "no spec field 'nope'" in err


def test_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, artlab_kohya.cli.main as c\n"
        "heavy = [m for m in ('pydantic', 'rich', 'huggingface_hub', 'PIL', 'yaml') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    result = subprocess.run([sys.executable, "-m", "artlab_kohya", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "render" in result.stdout


def test_readme_reference_table_is_current():
    from artlab_kohya.spec.reference import README_BEGIN, README_END, reference_markdown

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split(README_BEGIN, 1)[1].split(README_END, 1)[0]
    assert section.strip() == reference_markdown().strip(), "run `artlab-kohya explain --markdown` into the README"
