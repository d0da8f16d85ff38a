"""cli_dataset.py: the `dataset` and `caption` groups as a user meets them, and check_spec/preflight, which
`check` and `run` call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_caption_generate import fake_sd_scripts

from artlab_kohya.cli.caption import caption
from artlab_kohya.cli.check import check_spec, preflight
from artlab_kohya.cli.dataset import dataset
from artlab_kohya.spec import load_spec

pytest.importorskip("PIL.Image")

SPEC = """\
model:
  source: sd15
dataset:
  batch_size: 1
  subsets:
    - path: img/10_sks
network:
  type: lora
"""


@pytest.fixture(autouse=True)
def no_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("ARTLAB_KOHYA_TOKENIZERS", raising=False)


def run(group, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(group, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_importing_the_groups_stays_light():
    code = (
        "import sys, artlab_kohya.cli.dataset\n"
        "print([m for m in ('pydantic', 'rich', 'PIL', 'yaml', 'huggingface_hub') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_dataset_check_exit_codes_and_json(tmp_path, images):
    paths = images(tmp_path / "10_sks", [(512, 512)] * 15, caption="sks")
    code, out, err = run(dataset, "check", tmp_path / "10_sks", "--batch-size", "2")
    assert code == 0 and "10_sks" in out and "512x512" in out and err == ""
    assert out.strip().endswith("10_sks: ok, 0 warning(s)")
    paths[0].with_suffix(".txt").write_bytes(b"")
    code, out, err = run(dataset, "check", tmp_path / "10_sks", "--json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and "caption file(s) are empty" in data["errors"][0]
    code, _, err = run(dataset, "check", tmp_path / "10_sks")
    assert code == 1 and err.strip().endswith("10_sks: 1 error(s), 0 warning(s)")
    code, _, err = run(dataset, "check", paths[0])
    assert code == 2 and "for a spec use `artlab-kohya check" in err
    code, _, err = run(dataset, "check", tmp_path / "10_sks", "--resolution", "abc")
    assert code == 2 and "WIDTHxHEIGHT" in err


def test_organize_command(tmp_path, images):
    images(tmp_path / "raw", [(512, 512)] * 12)
    code, out, err = run(dataset, "organize", tmp_path / "raw", "--name", "sks", "--repeats", "auto",
                         "--out", tmp_path / "img", "--batch-size", "2")  # fmt: skip
    assert code == 0, err
    assert err.startswith("repeats auto = 25: the smallest repeats")
    assert "img/25_sks: 12 images (12 hard-linked), 12 captions copied" in out
    code, _, err = run(dataset, "organize", tmp_path / "raw", "--name", "sks", "--repeats", "25", "--out",
                       tmp_path / "img")  # fmt: skip
    assert code == 1 and "already exists" in err
    code, _, err = run(dataset, "organize", tmp_path / "raw", "--name", "sks", "--repeats", "0")
    assert code == 2 and "a number of at least 1, or auto" in err


def test_prepare_command(tmp_path, images):
    images(tmp_path / "raw", [(1000, 600)] * 3)
    code, out, err = run(dataset, "prepare", tmp_path / "raw", tmp_path / "out", "--size", "512")
    assert code == 0, err
    assert "3 images (512x512: 3), 3 captions" in out
    code, _, err = run(dataset, "prepare", tmp_path / "raw", tmp_path / "out2", "--size", "500")
    assert code == 1 and "multiples of 64" in err


def test_caption_edit_dry_run_then_write_then_restore(tmp_path, images):
    folder = tmp_path / "10_sks"
    images(folder, [(512, 512)] * 2, caption="1girl, solo, solo")
    code, out, err = run(caption, "edit", folder, "--trigger", "sks", "--dedupe-tags", "--dry-run")
    assert code == 0 and "-1girl, solo, solo\n\\ No newline at end of file\n+sks, 1girl, solo\n" in out
    assert "2 caption file(s) would change (dry run" in err
    assert (folder / "img000.txt").read_text() == "1girl, solo, solo"
    code, out, _ = run(caption, "edit", folder, "--trigger", "sks", "--replace", "solo=alone")
    assert code == 0 and "2 caption file(s) changed" in out and "caption restore" in out
    assert (folder / "img001.txt").read_text() == "sks, 1girl, alone, alone"
    code, out, _ = run(caption, "restore", folder, "--list")
    assert "2 changed, 0 created  caption edit --replace (('solo', 'alone'),) --trigger 'sks'" in out
    code, out, _ = run(caption, "restore", folder)
    assert code == 0 and out.startswith("restored ") and (folder / "img001.txt").read_text() == "1girl, solo, solo"
    code, _, err = run(caption, "edit", folder)
    assert code == 2 and "nothing to do" in err
    code, _, err = run(caption, "edit", folder, "--replace", "no-equals")
    assert code == 2 and "OLD=NEW" in err


def test_caption_without_subcommand_generates(tmp_path, images):
    install = fake_sd_scripts(tmp_path / "sd", "wd14", "caption_wd14_fake_model")
    images(tmp_path / "imgs", [(512, 512)] * 2, caption=None)
    code, out, err = run(caption, tmp_path / "imgs", "--model", "wd14", "--prefix", "sks",
                         "--kohya-dir", install.dir, "--python", sys.executable, "--model-dir", tmp_path / "m")  # fmt: skip
    assert code == 0, err
    assert "2 caption(s) written, 0 kept" in out
    assert "captioning 40/40" in err and "INFO: found 40 images." in err  # plain progress: not a terminal
    assert (tmp_path / "imgs/img000.txt").read_text() == "sks, solo, smile\n"
    code, out, _ = run(caption, tmp_path / "imgs", "--model", "wd14", "--kohya-dir", install.dir)
    assert code == 0 and "all 2 images have captions already" in out
    code, _, err = run(caption, tmp_path / "imgs", "--model", "blip", "--kohya-dir", install.dir, "--overwrite")
    assert code == 1 and "make_captions.py not found" in err


def test_check_spec_and_preflight(tmp_path, images, write_spec, capsys):
    paths = images(tmp_path / "img/10_sks", [(512, 512)] * 12, caption="sks, photo")
    spec = write_spec(SPEC)
    loaded = load_spec(spec)
    assert check_spec(loaded, Path(spec)) == 0
    out, err = capsys.readouterr()
    assert out.strip().endswith(f"{spec}: ok (2 warning(s)), 1200 steps")
    assert err.count("12 image(s); the guide wants") == 1  # plan's warning and ours: shown once
    assert "1200 total steps; the guide aims above ~1500" in err
    assert preflight(loaded) is True
    paths[0].with_suffix(".txt").write_bytes(b"")
    assert check_spec(loaded, Path(spec), as_json=True) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["total_steps"] is None
    assert preflight(loaded) is False
    assert "not launching: 1 dataset error(s)" in capsys.readouterr().err
    assert preflight(loaded, force=True) is True
