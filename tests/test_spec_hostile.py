"""Hostile or broken input: every one ends as located errors and exit 2, in bounded time and memory.

The bombs run in a child process with a memory ceiling and a timeout, so that a regression fails the
test instead of taking the machine down.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from artlab_kohya.cli.main import main
from artlab_kohya.spec import SpecError, load_spec

MINIMAL = """\
model:
  source: sd15
  family: sd15
dataset:
  subsets:
    - path: img/10_sks
network:
  type: lora
"""

BILLION_LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
"""

# The CLI in a child process that may use at most 2 GiB of address space (where the OS has the limit).
BOUNDED = (
    "import contextlib, resource, sys\n"
    "with contextlib.suppress(ValueError, OSError):\n"
    "    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
    "from artlab_kohya.cli.main import main\n"
    "main(sys.argv[1:], prog_name='artlab-kohya')\n"
)


def run_bounded(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BOUNDED, *args], capture_output=True, text=True, timeout=60, check=False
    )


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


def errors_of(path: Path, overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides)
    return [str(i) for i in info.value.issues]


def write_bytes(tmp_path: Path, data: bytes, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- YAML bombs and depth


def test_alias_bomb_is_refused_quickly(tmp_path):
    path = write_bytes(tmp_path, BILLION_LAUGHS.encode())
    result = run_bounded("check", str(path))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("spec.yaml:") and "aliases expand to more than" in first


def test_recursive_alias_is_located(write_spec):
    assert errors_of(write_spec("a: &a [*a]\n")) == [
        "spec.yaml:1: an alias refers to the list or table that contains it"
    ]
    (message,) = errors_of(write_spec("model: &m\n  source: sd15\n  again: *m\n"))
    assert message == "spec.yaml:3: an alias refers to the list or table that contains it"


def test_deep_nesting_is_located(write_spec):
    (message,) = errors_of(write_spec("x: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert message.startswith("spec.yaml:1: nested more than 64 levels deep")
    lines = "".join(f"{'  ' * i}k{i}:\n" for i in range(200))
    (message,) = errors_of(write_spec(lines))
    assert message.startswith("spec.yaml:64: nested more than 64 levels deep")


def test_too_many_aliases_are_refused(write_spec):
    text = "a: &a 1\nb: [" + ", ".join(["*a"] * 1500) + "]\n"
    (message,) = errors_of(write_spec(text))
    assert message.startswith("spec.yaml:2: more than 1000 aliases")


def test_merge_keys_still_work_and_explicit_keys_win(write_spec):
    path = write_spec(
        MINIMAL.replace(
            "    - path: img/10_sks\n",
            "    - &common {path: img/10_sks, flip_aug: true, keep_tokens: 1}\n"
            "    - <<: *common\n      path: img/5_other\n      keep_tokens: 2\n",
        )
    )
    first, second = load_spec(path).spec.dataset.subsets
    assert (second.path.name, second.flip_aug, second.keep_tokens) == ("5_other", True, 2)
    assert first.keep_tokens == 1


def test_huge_file_is_refused(tmp_path):
    path = write_bytes(tmp_path, MINIMAL.encode() + b"# " + b"x" * (2 << 20) + b"\n")
    (message,) = errors_of(path)
    assert message.startswith("spec.yaml: the file is larger than 1 MiB")


# --------------------------------------------------------------------------- encodings and characters


def test_non_utf8_bytes_are_located(tmp_path):
    path = write_bytes(tmp_path, MINIMAL.replace("sd15\n  family", "sd\xff15\n  family").encode("latin-1"))
    assert errors_of(path) == ["spec.yaml:2: not UTF-8 text (byte 0xff at column 13); save the file as UTF-8"]


def test_utf16_is_named(tmp_path):
    for encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-32"):
        (message,) = errors_of(write_bytes(tmp_path, MINIMAL.encode(encoding)))
        assert "UTF-16" in message or "UTF-32" in message, message
        assert "save the file as UTF-8" in message


def test_utf8_bom_is_accepted(tmp_path):
    path = write_bytes(tmp_path, b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_spec(path).spec.network.type == "lora"


def test_control_characters_are_located(tmp_path, write_spec):
    path = write_bytes(tmp_path, MINIMAL.replace("lora", "lo\x07ra").encode())
    assert errors_of(path) == ["spec.yaml:8: control character U+0007 at column 11; remove it"]
    path = write_bytes(tmp_path, MINIMAL.replace("type: lora", "type: lora\n  preset: a\x00b").encode())
    (message,) = errors_of(path)
    assert message.startswith("spec.yaml:9: control character U+0000")
    # escapes in double quotes make control characters too
    assert errors_of(write_spec(MINIMAL + 'output:\n  comment: "a\\x1b[2Jb"\n')) == [
        "spec.yaml:10: output.comment: control character U+001B in text; remove it"
    ]


def test_set_values_with_bad_bytes_or_control_characters(write_spec):
    path = write_spec(MINIMAL)
    bad_bytes = b"output.comment=caf\xff".decode("utf-8", "surrogateescape")  # how Python hands over argv
    assert errors_of(path, (bad_bytes, "output.comment=a\x07b")) == [
        "--set output.comment=caf\\xff: not UTF-8 text; give the value as UTF-8",
        "--set output.comment=a\\x07b: control character U+0007 at column 2; remove it",
    ]
    code, err = cli("check", str(path), "--set", "output.comment=a\x07b")
    assert code == 2 and "control character" in err


# --------------------------------------------------------------------------- numbers


def test_integer_over_4300_digits_is_located(write_spec):
    path = write_spec(MINIMAL + "training:\n  epochs: " + "9" * 5000 + "\n")
    assert errors_of(path) == [
        "spec.yaml:10: training.epochs: a whole number of 5000 digits; numbers in a spec fit in 64 bits"
    ]
    assert errors_of(write_spec(MINIMAL + "training:\n  seed: 0x" + "f" * 40 + "\n")) == [
        "spec.yaml:10: training.seed: a whole number of 40 digits; numbers in a spec fit in 64 bits"
    ]
    (message,) = errors_of(write_spec(MINIMAL), ("training.epochs=" + "9" * 5000,))
    assert message.startswith("--set training.epochs=999") and message.endswith(
        ": a whole number of 5000 digits; numbers in a spec fit in 64 bits"
    )


def test_explicit_tags_with_bad_values_are_located(write_spec):
    for value in ("!!int abc", "!!float abc", "!!timestamp abc", "!!binary '%%%'"):
        (message,) = errors_of(write_spec(MINIMAL + f"training:\n  seed: {value}\n"))
        assert message.startswith("spec.yaml:10: "), message


def test_counts_are_capped(write_spec):
    assert errors_of(write_spec(MINIMAL + "training:\n  epochs: 1e20\n")) == [
        "spec.yaml:10: training.epochs: must be a whole number (got 1e+20)"
    ]
    assert errors_of(write_spec(MINIMAL + "training:\n  epochs: 100000000000000000000\n")) == [
        "spec.yaml:10: training.epochs: a whole number of 21 digits; numbers in a spec fit in 64 bits"
    ]
    path = write_spec(
        MINIMAL.replace("    - path: img/10_sks", "    - path: img/10_sks\n      repeats: 1000000000")
        + "training:\n  epochs: 1000000000\n"
    )
    assert errors_of(path, ("dataset.resolution=100000", "dataset.buckets.max_resolution=100000")) == [
        "--set dataset.resolution=100000: dataset.resolution: must be at most 8192 or a list (got 100000)",
        "--set dataset.buckets.max_resolution=100000: dataset.buckets.max_resolution: must be at most 8192 "
        "(got 100000)",
        "spec.yaml:7: dataset.subsets[0].repeats: must be at most 10000 or one of 'folder', 'auto' (got 1000000000)",
        "spec.yaml:11: training.epochs: must be at most 10000 (got 1000000000)",
    ]


def test_plan_refuses_a_million_checkpoints(write_spec, images, tmp_path):
    images(tmp_path / "img/10_sks", [(512, 512)] * 2)
    path = write_spec(MINIMAL + "training:\n  epochs: null\n  max_steps: 1000000\n  save_every_n_steps: 1\n")
    code, err = cli("plan", str(path))
    assert code == 2
    assert err.splitlines()[0] == (
        "spec.yaml:12: training.save_every_n_steps: would save 1049999 checkpoints (at most 10000); save less often"
    )


def test_non_finite_floats_are_rejected_everywhere(write_spec):
    path = write_spec(
        MINIMAL.replace("type: lora", "type: lora\n  alpha: .nan")
        + "optimizer:\n  learning_rate: .inf\n  unet_lr: 1e400\n  args: {eps: -.inf}\n"
        + "kohya:\n  extra_args: {noise: .NaN}\n"
    )
    assert errors_of(path) == [
        "spec.yaml:9: network.alpha: must be a finite number (got nan)",
        "spec.yaml:11: optimizer.learning_rate: must be a finite number (got inf)",
        "spec.yaml:12: optimizer.unet_lr: must be a finite number (got inf)",
        "spec.yaml:13: optimizer.args.eps: must be a finite number (got -inf)",
        "spec.yaml:15: kohya.extra_args.noise: must be a finite number (got nan)",
    ]


def test_prepare_size_is_capped():
    from artlab_kohya.dataset.prepare import PrepareError, parse_size

    assert parse_size("8192x512") == (8192, 512)
    for text in ("100000", "512x1000000000", "9" * 5000):
        with pytest.raises(PrepareError):
            parse_size(text)


# --------------------------------------------------------------------------- --set locations


def test_unknown_key_through_set_is_located_at_the_set(write_spec):
    path = write_spec(MINIMAL)
    assert errors_of(path, ("dataset.batchsize=4", "trainning.epochs=3", "training.foo.bar=1")) == [
        "--set dataset.batchsize=4: dataset.batchsize: unknown key 'batchsize'; did you mean 'batch_size'?",
        "--set training.foo.bar=1: training.foo: unknown key 'foo' (known here: epochs, max_steps, "
        "save_every_n_epochs, save_every_n_steps, save_last_n_epochs, save_last_n_steps, save_state, "
        "save_state_on_train_end, save_last_n_epochs_state, save_last_n_steps_state, resume, prior_loss_weight, "
        "mixed_precision, save_precision, seed, cache_latents, gradient_checkpointing, gradient_accumulation, "
        "noise_offset, min_snr_gamma, multires_noise_iterations, multires_noise_discount, adaptive_noise_scale, "
        "ip_noise_gamma, min_timestep, max_timestep, loss_type, huber_c, huber_schedule, huber_scale, "
        "debiased_estimation_loss, zero_terminal_snr, scale_v_pred_loss_like_noise_pred, attention, "
        "max_token_length, workers, persistent_workers, stop_on_nan, blocks_to_swap, cache_text_encoder_outputs)",
        "--set trainning.epochs=3: trainning: unknown key 'trainning'; did you mean 'training'?",
    ]


# --------------------------------------------------------------------------- rerun of a tampered lock


@pytest.fixture
def lock_dir(tmp_path, images):
    images(tmp_path / "img/10_sks", [(512, 512)] * 12)
    model = tmp_path / "base.safetensors"
    model.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    run = tmp_path / "runs/lora/run1"
    run.mkdir(parents=True)
    lock = {
        "artlab_kohya": "0.1.0",
        "spec": {
            "model": {"source": {"type": "local", "path": str(model)}, "family": "sd15"},
            "dataset": {"subsets": [{"path": str(tmp_path / "img/10_sks"), "repeats": 10}]},
            "network": {"type": "lora"},
        },
        "model": {"path": str(model), "source": "local", "sha256": hashlib.sha256(model.read_bytes()).hexdigest()},
        "tokenizer_cache_dir": None,
    }
    (run / "spec.lock.yaml").write_text(yaml.safe_dump(lock, sort_keys=False))
    return run


def test_an_intact_lock_loads(lock_dir):
    from artlab_kohya.run.rerun import load_lock

    loaded, options = load_lock(lock_dir)
    assert loaded.spec.dataset.subsets[0].repeats == 10 and options.expect_sha256


def test_rerun_of_a_tampered_lock_exits_2_located(lock_dir):
    lock = lock_dir / "spec.lock.yaml"
    good = lock.read_text()

    def rerun_errors(text: str | bytes) -> list[str]:
        lock.write_bytes(text if isinstance(text, bytes) else text.encode())
        code, err = cli("rerun", str(lock_dir))
        assert code == 2, err
        assert "Traceback" not in err
        return err.splitlines()

    assert rerun_errors("spec: [1, 2\n")[0].startswith("spec.lock.yaml:2: not valid YAML")
    assert rerun_errors(good.encode("utf-16"))[0] == "spec.lock.yaml:1: the file is UTF-16; save the file as UTF-8"
    assert rerun_errors(good.encode("latin-1") + b"# caf\xe9\n")[0].startswith("spec.lock.yaml:")
    model_line = good.splitlines().index("model:") + 1
    assert rerun_errors(good.replace("sha256:", "sha:")) == [
        f"spec.lock.yaml:{model_line}: model.sha256: is required",
        f"1 error(s) in {lock_dir}",
    ]
    network_line = good.splitlines().index("    type: lora") + 1
    assert rerun_errors(good.replace("type: lora", "type: lorra"))[0] == (
        f"spec.lock.yaml:{network_line}: spec.network.type: must be one of lora, dylora, locon, loha, lokr, ia3, "
        "glora, boft, diag-oft (got 'lorra'); did you mean 'lora'?"
    )
    assert rerun_errors("just text\n") == [
        "spec.lock.yaml:1: not an artlab-kohya run lock (a YAML table with spec: and model:)",
        f"1 error(s) in {lock_dir}",
    ]
    model_as_text = good.split("model:\n  path:")[0] + "model: 3\ntokenizer_cache_dir: null\n"
    assert rerun_errors(model_as_text)[0].endswith(": model: must be a table (the resolved model)")


def test_rerun_of_a_lock_bomb_is_refused_quickly(lock_dir):
    (lock_dir / "spec.lock.yaml").write_text(BILLION_LAUGHS)
    result = run_bounded("rerun", str(lock_dir))
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("spec.lock.yaml:") and "Traceback" not in result.stderr


def test_organize_options_beyond_the_spec_bounds_are_one_line(tmp_path, images):
    from artlab_kohya.dataset.organize import OrganizeError, auto_repeats

    images(tmp_path / "flat", [(512, 512)] * 3)
    with pytest.raises(OrganizeError, match=r"^--resolution must be at most 8192"):
        auto_repeats(tmp_path / "flat", resolution=100_000)
    with pytest.raises(OrganizeError, match=r"^--epochs must be at most 10000 \(got 100000\)"):
        auto_repeats(tmp_path / "flat", epochs=100_000)


# --------------------------------------------------------------------------- names are one safe path part


def test_output_name_is_one_safe_path_part(write_spec):
    for bad in ("..", ".", "a/b", "a\\\\b", "a b", "x" * 201, "é" * 101):
        (message,) = errors_of(write_spec(MINIMAL + f'output:\n  name: "{bad}"\n'))
        assert message.startswith("spec.yaml:10: output.name: must "), message
    (message,) = errors_of(write_spec(MINIMAL + 'output:\n  name: "a\\0b"\n'))
    assert message.startswith("spec.yaml:10: output.name: control character U+0000")
    (message,) = errors_of(write_spec(MINIMAL), ("output.name=..",))
    assert message == "--set output.name=..: output.name: must name a file, not the folder '.' or '..' (got '..')"
    for good in ("sks_woman", "artlab-style.v1", ".hidden", "é" * 100):
        assert load_spec(write_spec(MINIMAL + f"output:\n  name: {good}\n")).spec.output.name == good


def test_init_refuses_a_name_that_leaves_the_project(tmp_path):
    for bad in ("../../x", "a/b", "..", "x\nmodel: evil", "my lora"):
        code, err = cli("init", "--preset", "anime", "--name", bad, str(tmp_path / "p"))
        assert code == 2 and err.startswith("error: --name "), err
    assert not (tmp_path / "p").exists() and not (tmp_path / "x").exists()
    code, _ = cli("init", "--preset", "anime", "--name", "sks", str(tmp_path / "p"))
    assert code == 0 and (tmp_path / "p/img/10_sks").is_dir()
    for name in ("2024", "true", "1e5", ".inf", "null"):  # names YAML would read as something else
        code, err = cli("init", "--preset", "anime", "--name", name, str(tmp_path / f"n{name}"))
        assert code == 0, err
        spec = load_spec(tmp_path / f"n{name}/spec.yaml").spec
        assert (spec.output.name, spec.dataset.subsets[0].class_tokens) == (name, name)
    long_folder = tmp_path / ("y" * 250)
    code, err = cli("init", "--preset", "anime", str(long_folder))
    assert code == 0, err
    assert load_spec(long_folder / "spec.yaml").spec.output.name == "y" * 64


# --------------------------------------------------------------------------- credentials


def test_credentials_in_extra_args_point_at_the_environment(write_spec):
    path = write_spec(
        MINIMAL
        + "kohya:\n  extra_args:\n    wandb_api_key: abc123\n    huggingface_token: hf_x\n"
        + "    my_secret: 1\n    hub_password: x\n    auth_token: y\n    token_warmup_step: 10\n"
    )
    assert errors_of(path) == [
        "spec.yaml:11: kohya.extra_args.wandb_api_key: 'wandb_api_key' is a credential, and a spec is copied into "
        "every run's record; set the WANDB_API_KEY environment variable instead (sd-scripts' libraries read it)",
        "spec.yaml:12: kohya.extra_args.huggingface_token: 'huggingface_token' is a credential, and a spec is copied "
        "into every run's record; set the HF_TOKEN environment variable instead (sd-scripts' libraries read it)",
        "spec.yaml:13: kohya.extra_args.my_secret: 'my_secret' looks like a credential, and a spec is copied into "
        "every run's record; pass it in the environment instead (WANDB_API_KEY, HF_TOKEN, ...)",
        "spec.yaml:14: kohya.extra_args.hub_password: 'hub_password' looks like a credential, and a spec is copied "
        "into every run's record; pass it in the environment instead (WANDB_API_KEY, HF_TOKEN, ...)",
        "spec.yaml:15: kohya.extra_args.auth_token: 'auth_token' looks like a credential, and a spec is copied into "
        "every run's record; pass it in the environment instead (WANDB_API_KEY, HF_TOKEN, ...)",
    ]
    (message,) = errors_of(write_spec(MINIMAL), ("kohya.extra_args.wandb_api_key=abc",))
    assert message.startswith("--set kohya.extra_args.wandb_api_key=abc: kohya.extra_args.wandb_api_key: ")


def test_sd_scripts_arguments_that_only_mention_tokens_are_not_credentials(write_spec):
    extra = "    keep_tokens_separator: '|||'\n    token_warmup_min: 1\n    token_warmup_step: 10\n"
    spec = load_spec(write_spec(MINIMAL + "kohya:\n  extra_args:\n" + extra)).spec
    assert set(spec.kohya.extra_args) == {"keep_tokens_separator", "token_warmup_min", "token_warmup_step"}


def test_paths_the_os_would_refuse_are_located(write_spec):
    path = write_spec(MINIMAL)
    (message,) = errors_of(path, ("dataset.subsets[0].path=" + "a" * 300,))
    assert message.startswith("--set dataset.subsets[0].path=aaa") and message.endswith(
        ": dataset.subsets[0].path: has a file name part longer than 255 bytes ('" + "a" * 40 + "...')"
    )
    (message,) = errors_of(path, ("model.vae=" + "a/" * 2100,))
    assert message.endswith(": model.vae: is longer than 4096 bytes")


def test_a_set_path_deeper_than_any_spec_is_located(write_spec):
    (message,) = errors_of(write_spec(MINIMAL), ("training" + ".x" * 5000 + "=1",))
    assert message.startswith("--set training.x.x") and message.endswith("is more than 64 levels deep")
