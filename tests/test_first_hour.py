"""The first hour with artlab-kohya: what a new user meets before a LoRA trains, and that each failure
there says what is wrong before anything launches (issue "Hardening: the first hour").

Run against fake installs (tests/kohya_fakes.py, tests/fake_kohya) and real transcripts; nothing of
ours is patched.
"""

from __future__ import annotations

import io
import json
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from kohya_fakes import TESTED_PACKAGES, fake_sd_scripts, fake_trainer
from replay import parse_transcript
from rich.console import Console

from artlab_kohya.cli.main import main
from artlab_kohya.run.diagnose import diagnose
from artlab_kohya.run.display import Display
from artlab_kohya.run.train import RunOptions, run_spec
from artlab_kohya.spec import SpecError, load_spec
from artlab_kohya.trainer.doctor import run_doctor
from artlab_kohya.trainer.install import (
    OWN_PYTHON,
    Install,
    InstallError,
    locate_install,
    recorded_versions,
    trainer_versions,
)
from artlab_kohya.trainer.needs import check_trainer, device_issues, missing_modules, spec_needs
from artlab_kohya.trainer.output import (
    CheckpointSaved,
    EpochStarted,
    ModuleNotFound,
    Parser,
    Progress,
    Step,
    StepLosses,
)

HERE = Path(__file__).parent
FAKE = HERE / "fake_kohya"
TRANSCRIPTS = HERE / "data" / "transcripts"
SPEC = "model: {source: m.safetensors, family: sd15}\ndataset: {subsets: [{path: img/10_a}]}\nnetwork: {type: lora}\n"


@pytest.fixture(autouse=True)
def _own_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))
    for name in ("ARTLAB_KOHYA_DIR", "ARTLAB_KOHYA_PYTHON", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def venv(folder: Path) -> Path:
    """A virtual environment's layout: bin/python (what finding one looks for)."""
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    return python


def transcript(name: str) -> list:
    stdout, stderr = ((TRANSCRIPTS / f"{name}.{s}").read_text(encoding="utf-8") for s in ("stdout", "stderr"))
    return parse_transcript(stdout, stderr)


def fake_model(path: Path) -> Path:
    header = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    return path


def project(tmp_path: Path, images, monkeypatch, kohya: str, **spec) -> Path:
    """A spec with 12 images and a tokenizer folder, trained by `kohya` (the spec's kohya: table)."""
    images(tmp_path / "img/10_sks", [(512, 512)] * 12)
    fake_model(tmp_path / "base.safetensors")
    tokenizer = tmp_path / "tok" / "openai_clip-vit-large-patch14"
    tokenizer.mkdir(parents=True)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (tokenizer / name).write_text("{}")
    monkeypatch.setenv("ARTLAB_KOHYA_TOKENIZERS", str(tmp_path / "tok"))
    text = (
        "model:\n  source: base.safetensors\n  family: sd15\n"
        "dataset:\n  resolution: 512\n  batch_size: 1\n  buckets:\n    enabled: false\n"
        "  subsets:\n    - path: img/10_sks\n"
        f"network:\n  type: {spec.get('network', 'lora')}\n  dim: 4\n  alpha: 1\n"
        f"optimizer:\n  type: {spec.get('optimizer', 'AdamW')}\n"
        "training:\n  epochs: 2\n  mixed_precision: 'no'\n"
        "output:\n  name: tiny_lora\n"
        f"kohya:\n{kohya}"
    )
    (tmp_path / "spec.yaml").write_text(text)
    return tmp_path / "spec.yaml"


# --------------------------------------------------------------------------- 1. the trainer's Python


def test_a_kohya_ss_folder_runs_with_its_own_venv(tmp_path):
    root = tmp_path / "kohya_ss"
    fake_sd_scripts(root / "sd-scripts")
    (root / "kohya_gui.py").write_text("")
    python = venv(root / "venv")
    install = locate_install(root)
    assert install.python == str(python) and not install.own_python
    assert install.python_from == f"the environment {root / 'venv'}"


@pytest.mark.parametrize("where", ["sd-scripts/venv", "sd-scripts/.venv", "venv", ".venv"])
def test_a_venv_in_or_beside_an_sd_scripts_checkout(tmp_path, where):
    sd = fake_sd_scripts(tmp_path / "sd-scripts")
    python = venv(tmp_path / where)
    assert locate_install(sd).python == str(python)


def test_a_named_python_wins_over_a_venv_found(tmp_path, monkeypatch):
    sd = fake_sd_scripts(tmp_path / "sd-scripts")
    venv(sd / "venv")
    other = venv(tmp_path / "other")
    assert locate_install(sd, tmp_path / "other").python == str(other)
    monkeypatch.setenv("ARTLAB_KOHYA_PYTHON", str(other))
    install = locate_install(sd)
    assert install.python == str(other) and install.python_from == "ARTLAB_KOHYA_PYTHON"


def test_a_venv_beside_a_symlinked_checkout(tmp_path):
    """~/kohya/sd-scripts -> /data/sd-scripts with ~/kohya/venv: the venv is beside the name used."""
    real = fake_sd_scripts(tmp_path / "data" / "sd-scripts")
    (tmp_path / "kohya").mkdir()
    (tmp_path / "kohya" / "sd-scripts").symlink_to(real)
    python = venv(tmp_path / "kohya" / "venv")
    install = locate_install(tmp_path / "kohya" / "sd-scripts")
    assert install.dir == real and install.python == str(python)


def test_no_trainer_environment_found_is_said(tmp_path):
    sd = fake_sd_scripts(tmp_path / "sd-scripts")
    install = locate_install(sd)
    assert install.python == sys.executable and install.own_python
    assert install.python_from.startswith(OWN_PYTHON) and str(sd) in install.python_from


def test_run_refuses_a_python_that_cannot_import_torch(tmp_path, images, monkeypatch):
    """kohya.dir is a kohya_ss folder without a venv, no kohya.python: artlab-kohya's own Python, which has
    no torch (its probe said so), must not be launched."""
    root = tmp_path / "kohya_ss"
    fake_sd_scripts(root / "sd-scripts")
    spec = project(tmp_path, images, monkeypatch, f"  dir: {root}\n")
    with pytest.raises(InstallError) as refused:
        run_spec(load_spec(spec), RunOptions(runs_root=tmp_path / "runs", plain=True))
    message = str(refused.value)
    assert f"the trainer Python {sys.executable} ({OWN_PYTHON}" in message
    assert "cannot import torch and accelerate (ModuleNotFoundError: No module named 'torch'" in message
    assert "set kohya.python (or ARTLAB_KOHYA_PYTHON)" in message
    assert not (tmp_path / "runs").exists()  # nothing written, nothing launched


def test_the_probe_reports_what_imports(tmp_path):
    sd = fake_sd_scripts(tmp_path / "sd")
    no_accelerate = {k: v for k, v in TESTED_PACKAGES.items() if k != "accelerate"}
    install = locate_install(sd, fake_trainer(tmp_path / "env", no_accelerate))  # torch, but no accelerate
    versions = trainer_versions(install)
    assert versions["modules"]["accelerate"] == "ModuleNotFoundError: No module named 'accelerate'"
    assert versions["modules"]["bitsandbytes"].startswith("ModuleNotFoundError")
    loaded = load_spec_text(tmp_path, SPEC + "output: {log_with: none}\n")
    with pytest.raises(InstallError, match=r"cannot import accelerate \(ModuleNotFoundError: .*-m pip install "):
        check_trainer(loaded, install, versions)
    checks = {c.name: c for c in run_doctor(install, surface=False).checks}
    assert checks["modules"].status == "fail" and checks["modules"].detail.startswith("cannot import accelerate")
    assert checks["trainer Python"].detail.endswith("; as given)")
    (sd / "accelerate").mkdir()  # the sd-scripts folder is first on the trainer's path, as when it trains
    (sd / "accelerate" / "__init__.py").write_text("")
    versions = trainer_versions(install)
    assert versions["modules"]["accelerate"] is None
    check_trainer(loaded, install, versions)  # torch and accelerate: nothing this spec needs is missing
    modules = {c.name: c for c in run_doctor(install, surface=False).checks}["modules"]
    assert modules.status == "ok" and modules.detail.startswith("imports accelerate, lycoris; not bitsandbytes")


def test_a_probe_answer_is_cached_per_environment(tmp_path):
    env = tmp_path / "env"
    python = fake_trainer(env / "bin")
    (env / "lib" / "python3.11" / "site-packages").mkdir(parents=True)  # what a venv has beside its bin/
    install = locate_install(fake_sd_scripts(tmp_path / "sd"), python)
    first = recorded_versions(install)
    (cached,) = (tmp_path / "cache" / "versions").iterdir()
    assert "modules" in first and json.loads(cached.read_text()) == first
    assert recorded_versions(install) == first


def test_runpy_says_accelerate_is_missing(tmp_path):
    """`python -m accelerate.commands.launch` in an environment without accelerate: one line, no traceback."""
    line = (
        "/opt/kohya_ss/venv/bin/python: Error while finding module specification for 'accelerate.commands.launch' "
        "(ModuleNotFoundError: No module named 'accelerate')\n"
    )
    parser = Parser()
    events = parser.feed("stderr", line) + parser.close()
    assert ModuleNotFound("accelerate", line.strip()) in events
    assert [e.module for e in Parser().feed("stderr", "C:\\k\\venv\\Scripts\\python.exe: No module named torch\n")
            if isinstance(e, ModuleNotFound)] == ["torch"]  # fmt: skip
    verdict = diagnose(
        load_spec_text(tmp_path, SPEC).spec, 1, events, tmp_path / "x", interrupted=False, stopped_for_nan=None,
        kohya_commit=None,
    )  # fmt: skip
    assert verdict.diagnosis is not None and "cannot import 'accelerate'" in verdict.diagnosis
    assert "accelerate==1.6.0" in verdict.diagnosis


# --------------------------------------------------------------------------- 2. optional modules


def load_spec_text(folder: Path, text: str):
    path = folder / "needs.yaml"
    path.write_text(text)
    return load_spec(path)


@pytest.mark.parametrize(
    ("extra", "needed"),
    [
        ("optimizer: {type: AdamW}\noutput: {log_with: none}\n", []),
        ("optimizer: {type: AdamW8bit}\noutput: {log_with: none}\n", [("bitsandbytes", "optimizer.type")]),
        ("optimizer: {type: PagedAdamW}\noutput: {log_with: none}\n", [("bitsandbytes", "optimizer.type")]),
        ("optimizer: {type: Lion}\noutput: {log_with: none}\n", [("lion_pytorch", "optimizer.type")]),
        (
            "optimizer: {type: Prodigy, learning_rate: 1.0}\noutput: {log_with: none}\n",
            [("prodigyopt", "optimizer.type")],
        ),
        (
            "optimizer: {type: DAdaptAdam, learning_rate: 1.0}\noutput: {log_with: none}\n",
            [("dadaptation", "optimizer.type")],
        ),
        ("optimizer: {type: AdamWScheduleFree}\noutput: {log_with: none}\n", [("schedulefree", "optimizer.type")]),
        (
            "optimizer: {type: bitsandbytes.optim.AdEMAMix8bit}\noutput: {log_with: none}\n",
            [("bitsandbytes", "optimizer.type")],
        ),
        ("optimizer: {type: torch.optim.RMSprop}\noutput: {log_with: none}\n", []),
        ("training: {attention: xformers}\noutput: {log_with: none}\n", [("xformers", "training.attention")]),
        ("output: {log_with: tensorboard}\n", [("tensorboard", "output.log_with")]),
        ("output: {log_with: all}\n", [("tensorboard", "output.log_with"), ("wandb", "output.log_with")]),
    ],
)
def test_what_a_spec_needs(tmp_path, extra, needed):
    spec = load_spec_text(tmp_path, SPEC + extra).spec
    assert [(n.modules[0], ".".join(map(str, n.field))) for n in spec_needs(spec)] == needed


def test_lycoris_networks_need_lycoris(tmp_path):
    spec = load_spec_text(tmp_path, SPEC.replace("type: lora", "type: locon") + "output: {log_with: none}\n").spec
    assert [(n.modules, n.field) for n in spec_needs(spec)] == [(("lycoris",), ("network", "type"))]


def test_missing_modules_are_located_with_the_pip_line(tmp_path):
    text = "optimizer:\n  type: AdamW8bit\n" + SPEC.replace("type: lora", "type: loha") + "output: {log_with: none}\n"
    loaded = load_spec_text(tmp_path, text)
    install = Install(tmp_path, "/opt/kohya/venv/bin/python")
    no = "ModuleNotFoundError: No module named '{}'"
    versions = {"torch": {"version": "2.8.0"}, "modules": {"accelerate": None, "bitsandbytes": no.format("bitsandbytes"),
                                                         "lycoris": no.format("lycoris")}}  # fmt: skip
    lines = [str(i) for i in missing_modules(loaded, install, versions)]
    assert lines == [
        "needs.yaml:2: optimizer.type: optimizer AdamW8bit needs bitsandbytes, which the trainer Python "
        "/opt/kohya/venv/bin/python cannot import (ModuleNotFoundError: No module named 'bitsandbytes'): install it "
        "with `/opt/kohya/venv/bin/python -m pip install bitsandbytes`, or use optimizer.type: AdamW (the 8-bit "
        "optimizers also need a CUDA GPU)",
        "needs.yaml:5: network.type: network loha (LyCORIS) needs lycoris, which the trainer Python "
        "/opt/kohya/venv/bin/python cannot import (ModuleNotFoundError: No module named 'lycoris'): install it "
        "with `/opt/kohya/venv/bin/python -m pip install lycoris-lora==3.4.0`, or use type: lora",
    ]
    versions["modules"]["lycoris"] = None
    del versions["modules"]["bitsandbytes"]  # not asked of this environment: nothing to say
    assert missing_modules(loaded, install, versions) == []


@pytest.mark.parametrize(
    ("family", "cuda", "refused"), [("sd3", False, True), ("sd3", True, False), ("flux1", False, False)]
)
def test_sd3_block_swap_is_refused_on_a_trainer_without_cuda(tmp_path, family, cuda, refused):
    # sd-scripts' CPU swap path fails at the first SD3 step; FLUX.1's runs (tests/test_engine_families.py)
    text = SPEC + "training:\n  blocks_to_swap: 1\n"
    loaded = load_spec_text(tmp_path, text)
    issues = device_issues(loaded, {"torch": {"version": "2.8.0", "cuda_available": cuda}}, family)
    assert [str(i) for i in issues] == (
        [
            "needs.yaml:5: training.blocks_to_swap: SD3 block swap needs a CUDA GPU: without one sd-scripts swaps "
            "through its untested CPU path, which fails at the first step (AttributeError: 'Sequential' object "
            "has no attribute 'weight'); remove it on this trainer"
        ]
        if refused
        else []
    )
    install = Install(tmp_path, "/opt/kohya/venv/bin/python")
    versions = {"torch": {"version": "2.8.0", "cuda_available": cuda}, "modules": {"accelerate": None}}
    if refused:
        with pytest.raises(SpecError, match="SD3 block swap needs a CUDA GPU"):
            check_trainer(loaded, install, versions, family)
    else:
        check_trainer(loaded, install, versions, family)


def test_run_refuses_an_eight_bit_optimizer_without_bitsandbytes(tmp_path, images, monkeypatch):
    """The fake install answers the probe with torch, accelerate and tensorboard, not bitsandbytes."""
    spec = project(tmp_path, images, monkeypatch, f"  dir: {FAKE}\n  python: {sys.executable}\n", optimizer="AdamW8bit")
    with pytest.raises(SpecError) as refused:
        run_spec(load_spec(spec), RunOptions(runs_root=tmp_path / "runs", plain=True))
    (issue,) = refused.value.issues
    assert str(issue).startswith("spec.yaml:16: optimizer.type: optimizer AdamW8bit needs bitsandbytes")
    assert f"`{sys.executable} -m pip install bitsandbytes`" in str(issue)
    assert not (tmp_path / "runs").exists()


def nvidia_smi(folder: Path, present: bool) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    if present:
        tool = folder / "nvidia-smi"
        tool.write_text("#!/bin/sh\n")
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def init_spec(tmp_path: Path) -> str:
    code, out, err = cli("init", "--preset", "anime", str(tmp_path / "p"))
    assert code == 0, out + err
    load_spec(tmp_path / "p" / "spec.yaml")  # a valid spec, whatever was chosen
    return (tmp_path / "p" / "spec.yaml").read_text()


def test_init_without_cuda_writes_a_spec_for_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", nvidia_smi(tmp_path / "bin", present=False))
    text = init_spec(tmp_path)
    assert "\n  type: AdamW\n" in text and '\n  mixed_precision: "no"\n' in text
    assert "no NVIDIA driver here (no nvidia-smi)" in text and "On a CUDA GPU use AdamW8bit" in text


def test_init_with_nvidia_smi_keeps_the_gui_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", nvidia_smi(tmp_path / "bin", present=True))
    text = init_spec(tmp_path)
    assert "\n  type: AdamW8bit\n" in text and "\n  mixed_precision: bf16\n" in text


def test_init_follows_the_cached_probe(tmp_path, monkeypatch):
    """A GPU without bf16 and an environment whose bitsandbytes does not import: AdamW and fp16."""
    monkeypatch.setenv("PATH", nvidia_smi(tmp_path / "bin", present=True))
    old = {"name": "Tesla T4", "total_memory": 16 * 2**30, "major": 7, "minor": 5}
    env = tmp_path / "env"
    python = fake_trainer(env / "bin", gpus=[old], bf16=False)
    (env / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    monkeypatch.setenv("ARTLAB_KOHYA_DIR", str(fake_sd_scripts(tmp_path / "sd")))
    monkeypatch.setenv("ARTLAB_KOHYA_PYTHON", python)
    recorded_versions(locate_install())  # what `doctor` or a first `run` leaves in the cache
    text = init_spec(tmp_path)
    assert "\n  type: AdamW\n" in text and "bitsandbytes does not import in the trainer's Python" in text
    assert "\n  mixed_precision: fp16\n" in text and "this GPU has no bf16" in text
    fake_trainer(env / "bin", gpus=[])  # the same environment, now without a GPU (and probed again)
    (env / "lib" / "python3.11" / "site-packages" / "x").mkdir()  # what a pip install changes
    recorded_versions(locate_install())
    text = init_spec(tmp_path / "again")
    assert "sees no CUDA GPU" in text and '\n  mixed_precision: "no"\n' in text


# --------------------------------------------------------------------------- 3. render


def hub_spec(tmp_path: Path) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text("model: {source: sd15}\ndataset: {subsets: [{path: img/10_a}]}\nnetwork: {type: lora}\n")
    return path


def test_render_says_a_hub_model_is_not_downloaded_yet(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    code, out, err = cli("render", str(hub_spec(tmp_path)), "-o", str(tmp_path / "out"))
    assert code == 2 and out == ""
    assert (
        "hub.yaml:1: model.source: stable-diffusion-v1-5/stable-diffusion-v1-5/v1-5-pruned-emaonly.safetensors@main"
        in err
    )
    assert f"is not downloaded yet (render only looks in the hub cache, {tmp_path / 'hub'})" in err
    assert f"`artlab-kohya fetch {tmp_path / 'hub.yaml'}` downloads it" in err
    assert "offline" not in err.lower()  # the user did not turn offline mode on
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert (
        "HF_HUB_OFFLINE is set, so fetch where the network is allowed"
        in cli("render", str(hub_spec(tmp_path)), "-o", str(tmp_path / "out"))[2]
    )


def render_lines(tmp_path: Path, kohya: str) -> list[str]:
    fake_model(tmp_path / "m.safetensors")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + kohya)
    code, out, err = cli("render", str(spec), "-o", str(tmp_path / "out"))
    assert code == 0, err
    return out.splitlines()


def test_render_says_what_keeps_the_command_from_running(tmp_path):
    missing = render_lines(tmp_path, f"kohya: {{dir: {tmp_path / 'nowhere'}}}\n")
    assert (
        missing[0]
        == f"# not runnable yet: sd-scripts folder {tmp_path / 'nowhere'} does not exist (kohya.dir or ARTLAB_KOHYA_DIR)"
    )
    assert missing[1] == "# set kohya.dir (or ARTLAB_KOHYA_DIR) to an sd-scripts or kohya_ss folder"
    assert missing[2].endswith(str(tmp_path / "out" / "config.toml")) and len(missing) == 3

    sd = fake_sd_scripts(tmp_path / "sd-scripts")
    own = render_lines(tmp_path, f"kohya: {{dir: {sd}}}\n")
    assert own[0].startswith(f"# no trainer environment found: {OWN_PYTHON}: no venv/ or .venv/ in {sd}")
    assert own[-1].startswith(sys.executable + " -m accelerate.commands.launch")

    python = venv(tmp_path / "venv")
    found = render_lines(tmp_path, f"kohya: {{dir: {sd}}}\n")
    assert found == [f"{python} -m accelerate.commands.launch" + found[0].split("accelerate.commands.launch", 1)[1]]


# --------------------------------------------------------------------------- 4. the out-of-memory killer


def test_the_oom_killer_through_accelerate_keeps_its_hint(tmp_path):
    """A real run whose training process got SIGKILL: accelerate exits 1 and names the signal only in its
    CalledProcessError; the diagnosis must still point at system memory."""
    events = transcript("oom_killer_accelerate")
    spec = load_spec_text(tmp_path, SPEC).spec
    verdict = diagnose(spec, 1, events, tmp_path / "none", interrupted=False, stopped_for_nan=None, kohya_commit=None)
    assert verdict.status == "failed" and verdict.diagnosis is not None
    assert verdict.diagnosis.startswith("The training process was killed by SIGKILL. SIGKILL without a Ctrl-C is")
    assert "out-of-memory killer (system RAM, not VRAM)" in verdict.diagnosis
    direct = diagnose(spec, 137, [], tmp_path / "none", interrupted=False, stopped_for_nan=None, kohya_commit=None)
    assert direct == verdict  # the same words whichever way the signal is learned


# --------------------------------------------------------------------------- 5. smaller


def test_smoke_cleans_up_and_keeps_only_a_failed_run(tmp_path, monkeypatch):
    import tempfile

    from artlab_kohya.cli.doctor import smoke_run
    from artlab_kohya.trainer.doctor import write_toy_clip_tokenizer

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    model = fake_model(tmp_path / "smoke.safetensors")
    tokenizers = write_toy_clip_tokenizer(tmp_path / "tok")
    install = Install(FAKE, sys.executable)
    monkeypatch.setenv("FAKE_TRANSCRIPT", "lora")
    assert smoke_run(install, model, tokenizers, "no", plain=True) == 0
    assert list(temp.iterdir()) == []
    monkeypatch.setenv("FAKE_TRANSCRIPT", "fail_dataset_missing_dir")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert smoke_run(install, model, tokenizers, "no", plain=True) == 1
    (project,) = temp.iterdir()
    (run,) = (project / "runs" / "smoke").iterdir()
    assert f"smoke: failed; its run folder is kept: {run}" in err.getvalue()
    assert json.loads((run / "result.json").read_text())["status"] == "failed"


def test_the_table_names_checkpoints_inside_the_run_folder_relative_to_it(tmp_path):
    run = tmp_path / "runs" / "a_rather_long_lora_name" / "20261128-160000-abcdef"
    inside = run / "checkpoints" / "a_rather_long_lora_name-000001.safetensors"
    outside = Path("/data/loras/a_rather_long_lora_name.safetensors")
    events = [EpochStarted(1, 2), Step(6, 12, 9.0, 9.0, 0.67, 1.12), CheckpointSaved(inside),
              EpochStarted(2, 2), Step(12, 12, 18.0, 0.0, 0.67, 1.05), CheckpointSaved(outside)]  # fmt: skip
    for width in (100, 50):
        console = Console(file=io.StringIO(), width=width, force_terminal=True, record=True)
        display = Display(console, folder=run)
        for event in events:
            display.handle(event)
        display.finish()
        text = console.export_text()
        table = text[text.index("epochs") :]
        assert "…" not in table and str(run) not in table  # relative inside the run folder; folded, never cut
        cells = "".join(line.split("│")[3].strip() for line in table.splitlines() if line.count("│") == 5)
        assert cells == f"checkpoints/a_rather_long_lora_name-000001.safetensors{outside}"
    plain = io.StringIO()
    display = Display(Console(file=plain, width=60), plain=True, folder=run)
    for event in events:
        display.handle(event)
    display.finish()
    assert plain.getvalue().splitlines()[-2:] == [
        "epoch 1: avr_loss 1.12, checkpoints/a_rather_long_lora_name-000001.safetensors",
        f"epoch 2: avr_loss 1.05, {outside}",
    ]


def test_latent_caching_is_named_in_the_live_view():
    events = transcript("lora")
    caching = [e for e in events if isinstance(e, Progress) and e.stage == "caching latents"]
    assert [(p.n, p.total) for p in caching][:2] == [(0, 6), (1, 6)] and caching[-1].n == 6
    # the bars before it (image sizes) are not latent caching
    first = next(i for i, e in enumerate(events) if isinstance(e, Progress))
    assert events[first].stage == "" and events[first].desc == ""
    display = Display(Console(file=io.StringIO(), width=100, force_terminal=True))
    for event in events[: events.index(caching[3]) + 1]:
        display.handle(event)
    snapshot = Console(width=100, record=True, file=io.StringIO())
    snapshot.print(display._render())
    view = snapshot.export_text()
    assert view.startswith("caching latents ━") and "3/6" in view and "working" not in view
    display.finish()


def test_each_step_is_recorded_once_with_its_own_loss(tmp_path, images, monkeypatch):
    monkeypatch.setenv("FAKE_TRANSCRIPT", "lora")
    spec = project(tmp_path, images, monkeypatch, f"  dir: {FAKE}\n  python: {sys.executable}\n")
    outcome = run_spec(load_spec(spec), RunOptions(runs_root=tmp_path / "runs", plain=True))
    assert outcome.status == "succeeded"
    records = [json.loads(line) for line in (outcome.folder / "events.jsonl").read_text().splitlines()]
    steps = [(r["step"], r["loss"]) for r in records if r["type"] == "Step"]
    assert [s for s, _ in steps] == list(range(1, 121))
    # each step's own loss: its second frame in the transcript
    frames = [e for e in transcript("lora") if isinstance(e, Step)]
    own = {f.step: f.avr_loss for f in frames}  # the last frame of each step
    assert steps == [(s, own[s]) for s in range(1, 121)]
    assert steps[:3] == [(1, 1.11), (2, 1.04), (3, 1.08)]


def test_step_losses_without_tqdm_first_frames():
    """Fast steps: tqdm may skip the frame that still shows the previous loss; and it repeats the last."""
    losses = StepLosses()
    frames = [Step(0, 3, 0, None, None, None),
              Step(1, 3, 0, None, 1.0, 0.5),  # only its own frame
              Step(2, 3, 0, None, 1.0, 0.5), Step(2, 3, 0, None, 1.0, 0.4),  # both
              Step(3, 3, 0, None, 1.0, 0.3), Step(3, 3, 0, None, 1.0, 0.3),  # its own, repeated on close
              Step(3, 3, 0, None, 1.0, 0.3)]  # fmt: skip
    given = [s for s in map(losses.final, frames) if s is not None]
    assert [(s.step, s.avr_loss) for s in given] == [(1, 0.5), (2, 0.4), (3, 0.3)]


# --------------------------------------------------------------------------- 6. the README


def test_readme_renders_as_written():
    """Every code fence closed (an unclosed one rendered Install and the spec sections as code), the
    command block once, and the install it describes is the one quickstart makes and `run` finds."""
    root = HERE.parent
    lines = (root / "README.md").read_text(encoding="utf-8").splitlines()
    fenced, inside = [], False
    for line in lines:
        if line.lstrip().startswith("```"):
            inside = not inside
        fenced.append(inside)
    assert not inside, "a code fence is never closed"
    headings = [line for line, code in zip(lines, fenced, strict=True) if line.startswith("## ") and not code]
    for heading in ("## Install", "## A spec", "## Training fully offline on a local model"):
        assert heading in headings
    assert sum(line.startswith("artlab-kohya init --preset person my-lora/") for line in lines) == 1
    text = "\n".join(lines)
    assert "python3 -m venv vendor/venv && vendor/venv/bin/pip install '.[trainer]'" in text
    assert "vendor/venv/bin/python -m pip install" in (root / "scripts" / "quickstart.sh").read_text()


def test_the_documented_trainer_venv_is_the_one_found(tmp_path):
    checkout = tmp_path / "artlab-kohya"
    sd = fake_sd_scripts(checkout / "vendor" / "sd-scripts")
    python = venv(checkout / "vendor" / "venv")
    venv(checkout / ".venv")  # artlab-kohya's own: never taken for the trainer's
    assert locate_install(sd).python == str(python)
