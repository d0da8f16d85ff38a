"""trainer/lora_tools.py and `lora resize` / `lora merge`: the commands as data, the checks made from the files'
headers, and real child processes in the stand-in install (tests/fake_kohya/networks/: the scripts' real
argument surfaces, recorded output of real runs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from lora_files import recorded, write_lora, write_safetensors

from artlab_kohya.cli.main import main
from artlab_kohya.errors import InputError
from artlab_kohya.models.hashing import sha256_file
from artlab_kohya.models.lora_file import read_lora
from artlab_kohya.trainer import lora_tools as tools
from artlab_kohya.trainer.install import Install

FAKE = Path(__file__).parent / "fake_kohya"


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--kohya-dir", str(FAKE), "--python", sys.executable])
    return result.exit_code, result.stdout, result.stderr


def sd15_model(path: Path) -> Path:
    """A checkpoint header that reads as SD1.x (OpenAI CLIP text encoder, 768-wide cross-attention)."""
    return write_safetensors(
        path,
        {
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
            "cond_stage_model.transformer.text_model.final_layer_norm.weight": (768,),
        },
        dtype="F16",
    )


def test_commands_are_pure_data(tmp_path):
    install = Install(dir=Path("/sd"), python="/venv/bin/python", commit="48d368fa" + "0" * 32)
    job = tools.resize_job(install, Path("/l/a.safetensors"), Path("/o/b.safetensors"), dim=8, dynamic="sv_fro",
                           dynamic_param=0.9, device="cuda")  # fmt: skip
    partial = str(job.partial)
    assert partial.startswith("/o/.b.") and partial.endswith(".partial.safetensors")
    assert job.argv == [
        "/venv/bin/python", "/sd/networks/resize_lora.py", "--model", "/l/a.safetensors", "--save_to", partial,
        "--new_rank", "8", "--save_precision", "fp16", "--dynamic_method", "sv_fro", "--dynamic_param", "0.9",
        "--device", "cuda",
    ]  # fmt: skip
    assert job.env["PYTHONPATH"].split(":")[0] == "/sd" and job.env["PYTHONUNBUFFERED"] == "1"
    job = tools.merge_job(install, [Path("/l/a.safetensors")], Path("/o/m.safetensors"), family="sd2",
                          ratios=[0.8], model=Path("/m/base.safetensors"))  # fmt: skip
    assert job.argv == [
        "/venv/bin/python", "/sd/networks/merge_lora.py", "--sd_model", "/m/base.safetensors", "--v2",
        "--save_to", str(job.partial), "--models", "/l/a.safetensors", "--ratios", "0.8",
        "--precision", "float", "--save_precision", "fp16",
    ]  # fmt: skip
    assert job.tool == "merge_lora" and job.inputs == [
        ("lora", Path("/l/a.safetensors")),
        ("model", Path("/m/base.safetensors")),
    ]
    job = tools.merge_job(install, [Path("/a"), Path("/b")], Path("/o/m.safetensors"), family="sdxl",
                          ratios=[1.0, 0.5], concat=True)  # fmt: skip
    assert job.argv[1] == "/sd/networks/sdxl_merge_lora.py" and job.argv[-1] == "--concat"
    assert "--sd_model" not in job.argv and job.argv[job.argv.index("--ratios") + 1 :][:2] == ["1", "0.5"]


def test_resize_checks(tmp_path):
    lora = read_lora(write_lora(tmp_path / "a.safetensors", "lora", dim=8))
    assert tools.check_resize(lora, 4, None, None) == []
    with pytest.raises(InputError, match="not below the file's rank"):
        tools.check_resize(lora, 8, None, None)
    assert tools.check_resize(lora, 8, "sv_fro", 0.9)  # a note: --dim is the ceiling
    with pytest.raises(InputError, match="needs --dynamic-param"):
        tools.check_resize(lora, 4, "sv_ratio", None)
    with pytest.raises(InputError, match="1 or more"):
        tools.check_resize(lora, 4, "sv_ratio", 0.5)
    with pytest.raises(InputError, match="at most 1"):
        tools.check_resize(lora, 4, "sv_cumulative", 2.0)
    loha = read_lora(write_lora(tmp_path / "h.safetensors", "loha", dim=8))
    with pytest.raises(InputError, match="is a LoHa: resize_lora.py only handles lora_down/lora_up"):
        tools.check_resize(loha, 4, None, None)


def test_merge_checks(tmp_path):
    sd15 = read_lora(write_lora(tmp_path / "a.safetensors", "lora", dim=8))
    sd15_4 = read_lora(write_lora(tmp_path / "b.safetensors", "lora", dim=4))
    sdxl = read_lora(write_lora(tmp_path / "x.safetensors", "lora", "sdxl", dim=4))
    assert tools.check_merge([sd15], "sd15", False) == "sd15"
    assert tools.check_merge([sdxl, sdxl], None, False) == "sdxl"
    with pytest.raises(InputError, match="the LoRAs are for sdxl, the model is sd15"):
        tools.check_merge([sdxl], "sd15", False)
    with pytest.raises(InputError, match="different model families"):
        tools.check_merge([sd15, sdxl], None, True)
    with pytest.raises(InputError, match="different ranks .* pass --concat"):
        tools.check_merge([sd15, sd15_4], None, False)
    assert tools.check_merge([sd15, sd15_4], None, True) == "sd15"
    lokr = read_lora(write_lora(tmp_path / "k.safetensors", "lokr", dim=4))
    with pytest.raises(InputError, match="is a LoKr"):
        tools.check_merge([lokr], "sd15", False)


def test_resize_runs_the_script_and_records_it(tmp_path):
    src = write_lora(tmp_path / "tiny.safetensors", "lora", dim=4, metadata=recorded("lora")["metadata"])
    out = tmp_path / "small.safetensors"
    code, stdout, stderr = cli("lora", "resize", str(src), "--dim", "2", "-o", str(out))
    assert code == 0, stderr
    assert f"wrote {out}" in stdout and "resizing complete" in stderr  # the script's own log, passed on
    assert read_lora(out).ranks == {2: 264}
    record = json.loads((tmp_path / "small.safetensors.artlab.json").read_text())
    assert record["tool"] == "resize_lora" and record["inputs"][0]["sha256"] == sha256_file(src)
    assert record["output"]["sha256"] == sha256_file(out) and record["output"]["size"] == out.stat().st_size
    assert record["command"][1].endswith("networks/resize_lora.py") and "--new_rank" in record["command"]
    assert record["sd_scripts"]["commit"].startswith("unknown") and record["sd_scripts"]["dir"] == str(FAKE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.safetensors", "small.safetensors.artlab.json",
                                                          "tiny.safetensors"]  # fmt: skip
    code, _, stderr = cli("lora", "resize", str(src), "--dim", "2", "-o", str(out))
    assert code == 2 and "exists; it is never overwritten" in stderr


def test_merge_into_a_model_and_into_one_lora(tmp_path):
    a = write_lora(tmp_path / "a.safetensors", "lora", dim=4, metadata=recorded("lora")["metadata"])
    b = write_lora(tmp_path / "b.safetensors", "lora", dim=4)
    model = sd15_model(tmp_path / "base.safetensors")
    out = tmp_path / "merged.safetensors"
    code, stdout, stderr = cli("lora", "merge", str(a), "--into", str(model), "--ratio", "0.8", "-o", str(out))
    assert code == 0, stderr
    record = json.loads((tmp_path / "merged.safetensors.artlab.json").read_text())
    assert [i["role"] for i in record["inputs"]] == ["lora", "model"]
    assert record["inputs"][1]["sha256"] == sha256_file(model) and record["tool"] == "merge_lora"
    assert record["command"][record["command"].index("--ratios") + 1] == "0.8"
    assert "saving SD model to" in stderr
    code, _, stderr = cli("lora", "merge", str(a), str(b), "-o", str(tmp_path / "ab.safetensors"))
    assert code == 0, stderr
    assert read_lora(tmp_path / "ab.safetensors").ranks == {4: 264}


def test_merge_refusals(tmp_path):
    a = write_lora(tmp_path / "a.safetensors", "lora", dim=4)
    xl = write_lora(tmp_path / "xl.safetensors", "lora", "sdxl", dim=4)
    model = sd15_model(tmp_path / "base.safetensors")
    out = str(tmp_path / "m.safetensors")
    cases = [
        (["lora", "merge", str(xl), "--into", str(model), "-o", out], "the LoRAs are for sdxl, the model is sd15"),
        (["lora", "merge", str(a), "-o", out], "nothing to merge"),
        (["lora", "merge", str(a), str(a), "--ratio", "1", "-o", out], "1 --ratio for 2 LoRA file(s)"),
        (["lora", "merge", str(a), "--into", str(model), "-o", str(tmp_path / "m.ckpt")], "write a .safetensors file"),
        (["lora", "merge", str(a), "--into", str(model), "--concat", "-o", out], "no meaning with --into"),
    ]
    for args, message in cases:
        code, _, stderr = cli(*args)
        assert code == 2 and message in stderr, (args, stderr)
    assert not Path(out).exists()


def test_a_failing_script_leaves_nothing(tmp_path, monkeypatch):
    """The script fails (here: replaying a ModuleNotFoundError): an error naming the cause, no output, no
    temporary file, no record."""
    src = write_lora(tmp_path / "tiny.safetensors", "lora", dim=4)
    monkeypatch.setenv("FAKE_TRANSCRIPT", "module_not_found")
    code, _, stderr = cli("lora", "resize", str(src), "--dim", "2", "-o", str(tmp_path / "s.safetensors"))
    assert code == 1 and "has no module" in stderr and "not sd-scripts' environment" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.safetensors"]
