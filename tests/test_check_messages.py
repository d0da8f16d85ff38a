"""What `check` tells the user points at things that exist: the nearest real choice, a real option."""

from __future__ import annotations

from click.testing import CliRunner
from test_spec_hostile import MINIMAL  # the smallest spec that validates, declared once

from artlab_kohya.cli.dataset import dataset
from artlab_kohya.cli.main import main
from artlab_kohya.spec import SpecError, load_spec


def only_error(path, overrides=()) -> str:
    try:
        load_spec(path, overrides)
    except SpecError as exc:
        (issue,) = exc.issues
        return str(issue)
    raise AssertionError("no error")


def test_did_you_mean_prefers_a_choice_with_the_same_first_word(write_spec):
    path = write_spec(MINIMAL)
    message = only_error(path, ("scheduler.type=cosine_with_warmup",))
    assert message.startswith("--set scheduler.type=cosine_with_warmup: scheduler.type: must be one of 'constant', ")
    assert message.endswith("(got 'cosine_with_warmup'); did you mean 'cosine_with_restarts'?")
    assert only_error(path, ("scheduler.type=constant_warmup",)).endswith("did you mean 'constant_with_warmup'?")
    assert only_error(path, ("scheduler.type=polynomal",)).endswith("did you mean 'polynomial'?")
    assert only_error(path, ("training.mixed_precision=fp32",)).endswith("did you mean 'fp16'?")
    assert only_error(path, ("network.type=lorra",)).endswith("did you mean 'lora'?")


def test_check_names_a_tokenizer_source_that_exists(write_spec, images, tmp_path, monkeypatch):
    for name in ("ARTLAB_KOHYA_TOKENIZERS", "HF_HUB_CACHE", "ARTLAB_KOHYA_CACHE"):
        monkeypatch.setenv(name, str(tmp_path / "empty" / name))  # no tokenizer anywhere
    images(tmp_path / "img/10_sks", [(512, 512)] * 16)
    path = write_spec(MINIMAL)
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "--tokenizer" not in out  # `check SPEC` has no such option
    assert "no CLIP tokenizer found; `artlab-kohya fetch SPEC` puts one in $ARTLAB_KOHYA_TOKENIZERS" in out
    result = CliRunner().invoke(dataset, ["check", str(tmp_path / "img/10_sks")])
    assert "no CLIP tokenizer found; --tokenizer DIR" in " ".join(result.stdout.split())  # `dataset check` has it
