"""The parser on real transcripts (tests/data/transcripts: raw output of real sd-scripts runs).

Most are sd-scripts runs; three are not, and their .meta says so: torch_oom_nan (tqdm and torch
on a GPU, for the out-of-memory and nan layouts), module_not_found and chained_exception (Python's
own traceback layouts).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from replay import parse_transcript

from artlab_kohya.trainer.output import (
    CheckpointSaved,
    EpochStarted,
    Event,
    LauncherFailed,
    Line,
    LogRecord,
    ModelSaved,
    ModuleNotFound,
    NanLoss,
    NoDataFound,
    OutOfMemory,
    Parser,
    Progress,
    Step,
    Traceback,
    TrainingSummary,
    UsageError,
)

DATA = Path(__file__).parent / "data"
TRANSCRIPTS = DATA / "transcripts"
NAMES = sorted(p.stem for p in TRANSCRIPTS.glob("*.meta"))
E = TypeVar("E")


def read(name: str) -> tuple[str, str]:
    return tuple(  # type: ignore[return-value]
        (TRANSCRIPTS / f"{name}.{s}").read_bytes().decode("utf-8", errors="replace") for s in ("stdout", "stderr")
    )


def events_of(name: str) -> list[Event]:
    return parse_transcript(*read(name))


def only(events: list[Event], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def warnings(events: list[Event]) -> list[str]:
    return [e.message for e in only(events, LogRecord) if e.level == "WARNING"]


def fed_in_chunks(stdout: str, stderr: str, seed: int) -> list[Event]:
    """The same run, fed as a pipe reader might see it: random cuts, anywhere."""
    rng = random.Random(seed)
    parser = Parser()
    events: list[Event] = []
    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        i = 0
        while i < len(text):
            n = rng.choice([1, 2, 3, 7, 40, 200, 1500])
            events += parser.feed(stream, text[i : i + n])  # type: ignore[arg-type]
            i += n
        if stream == "stdout":
            events += parser._streams["stdout"].close()  # as parse_transcript does
    return events + parser.close()


# --- every transcript ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_chunking_does_not_change_the_events(name: str) -> None:
    whole = events_of(name)
    assert whole
    for seed in (1, 2, 3):  # compared as text: nan != nan
        assert list(map(repr, fed_in_chunks(*read(name), seed=seed))) == list(map(repr, whole))


@pytest.mark.parametrize("name", NAMES)
def test_no_ansi_codes_or_carriage_returns_survive(name: str) -> None:
    for event in events_of(name):
        assert "\x1b" not in repr(event) and "\\r" not in repr(event)


@pytest.mark.parametrize("name", NAMES)
def test_every_transcript_has_its_expectations(name: str) -> None:
    EXPECTATIONS[name](events_of(name))


def test_real_pipe_reads_give_the_same_events() -> None:
    """stream_unbuffered.json: the chunks as two pipes delivered them, in their real interleaving."""
    recorded = json.loads((DATA / "streams" / "lora_unbuffered.json").read_text(encoding="utf-8"))
    parser, per_stream = Parser(), {"stdout": "", "stderr": ""}
    live: list[Event] = []
    for _, stream, text in recorded["events"]:
        live += parser.feed(stream, text)
        per_stream[stream] += text
    live += parser.close()
    whole = parse_transcript(per_stream["stdout"], per_stream["stderr"])
    assert sorted(map(repr, live)) == sorted(map(repr, whole))
    assert [e.epoch for e in only(live, EpochStarted)] == [1, 2]
    # Arrival order: the checkpoint of epoch 1 comes after its last step and before epoch 2.
    kinds = [(type(e).__name__, getattr(e, "step", None)) for e in live if not isinstance(e, (LogRecord, Line))]
    assert kinds.index(("CheckpointSaved", None)) > kinds.index(("Step", 6))
    assert kinds.index(("CheckpointSaved", None)) < kinds.index(("Step", 7))


# --- the lora run, in detail --------------------------------------------------------------


def check_lora(events: list[Event]) -> None:
    steps = only(events, Step)
    assert len(steps) == 242  # the 0/120 frame, two frames per step, and the closing frame
    assert (steps[0].step, steps[0].avr_loss, steps[0].rate) == (0, None, None)
    assert (steps[-1].step, steps[-1].total, steps[-1].avr_loss) == (120, 120, 0.942)
    assert steps[1] == Step(1, 120, 1.0, 228.0, 1 / 1.92, None)  # "1/120 [00:01<03:48,  1.92s/it]"
    assert steps[2].avr_loss == 1.11 and steps[2].postfix == (("avr_loss", "1.11"),)
    # Each step's first frame still shows the previous step's average.
    step61 = [s for s in steps if s.step == 61]
    assert [s.avr_loss for s in step61] == [1.06, 1.06]
    assert only(events, TrainingSummary) == [
        TrainingSummary(
            train_images=60,
            validation_images=0,
            reg_images=0,
            batches_per_epoch=60,
            epochs=2,
            batch_size_per_device=(1,),
            gradient_accumulation_steps=1,
            total_steps=120,
        )
    ]
    assert only(events, TrainingSummary)[0].steps_per_epoch == 60
    assert only(events, EpochStarted) == [EpochStarted(1, 2), EpochStarted(2, 2)]
    assert [c.path.name for c in only(events, CheckpointSaved)] == [
        "tiny_lora-000001.safetensors",
        "tiny_lora.safetensors",
    ]
    assert only(events, ModelSaved) == [ModelSaved()]
    assert warnings(events) == [
        "no regularization images / 正則化画像が見つかりませんでした",
        "Failed to get git commit hash, using fallback",
        "Failed to get git commit hash, using fallback",
    ]
    assert not only(events, Traceback) and not only(events, NanLoss)


def test_lora_rich_lines_are_rejoined() -> None:
    records = only(events_of("lora"), LogRecord)
    by_location = {r.location: r for r in records}
    # Folded in the middle of a word, twice: rejoined without a space.
    assert by_location["strategy_base.py:61"] == LogRecord(
        "INFO",
        "load tokenizer from cache: /home/artist/lora/models/tokenizer_cache/openai_clip-vit-large-patch14",
        "strategy_base.py:61",
        None,
    )
    assert by_location["train_util.py:4744"].time == "2026-11-28 02:27:21"
    assert by_location["train_util.py:4744"].message == (
        "Loading settings from /home/artist/lora/configs/train_lora.toml..."
    )
    # A multi-line message keeps its own newlines and indentation; its folds are undone.
    dump = by_location["config_util.py:580"].message.split("\n")
    assert dump[:3] == ["[Dataset 0]", "  batch_size: 1", "  resolution: (64, 64)"]
    assert '    image_dir: "/home/artist/lora/data/img/10_testsubject"' in dump
    assert "    caption_dropout_every_n_epochs: 0" in dump
    assert "    caption_tag_dropout_rate: 0.0" in dump


def test_lora_log_lines_glued_to_a_frame() -> None:
    """A log line right after a frame: `...avr_loss=1.06]2026-11-28 02:29:09 WARNING  Failed to get
    git commit` and, after the first frame, one with a blank time column: `...?it/s]          INFO`."""
    records = only(events_of("lora"), LogRecord)
    glued = [r for r in records if r.location == "sai_model_spec.py:288"]
    assert [r.time for r in glued] == ["2026-11-28 02:29:09", "2026-11-28 02:30:32"]
    epochs = [r.message for r in records if r.location == "train_util.py:784"]
    assert epochs == [
        "epoch is incremented. current_epoch: 0, epoch: 1",
        "epoch is incremented. current_epoch: 1, epoch: 2",
    ]


def test_a_frame_is_emitted_when_its_bracket_arrives() -> None:
    """No waiting for the next "\\r", which comes one step (seconds) later."""
    stderr = read("lora")[1]
    start = stderr.index("\rsteps:  50%")
    end = stderr.index("]", start) + 1
    parser = Parser()
    parser.feed("stderr", stderr[:start])
    assert parser.feed("stderr", stderr[start : end - 5]) == []
    assert parser.feed("stderr", stderr[end - 5 : end]) == [
        Step(60, 120, 80.0, 80.0, 1 / 1.34, 1.06, (("avr_loss", "1.06"),))
    ]
    assert parser.feed("stderr", "\r") == []  # not twice


# --- the others -----------------------------------------------------------------------------


def check_missing_dataset_dir(events: list[Event]) -> None:
    japanese = (
        "画像がありません。引数指定を確認してください（train_data_dirには画像があるフォルダではなく、"
        "画像があるフォルダの親フォルダを指定する必要があります）"
    )
    message = (
        "No data found. Please verify arguments (train_data_dir must be the parent of folders with images) / "
        + japanese
    )
    assert events[-2:] == [LogRecord("ERROR", message, "train_network.py:576"), NoDataFound(message)]
    assert warnings(events) == [
        "not directory: /home/artist/lora/data/img/does_not_exist",
        "ignore subset with image_dir='/home/artist/lora/data/img/does_not_exist': no images found / "
        "画像が見つからないためサブセットを無視します",
        "no regularization images / 正則化画像が見つかりませんでした",
    ]
    assert [(p.n, p.total) for p in only(events, Progress)] == [(0, None), (0, None)]  # "0it [00:00, ?it/s]"
    assert not only(events, Step)


def check_unknown_dataset_key(events: list[Event]) -> None:
    assert (
        LogRecord("ERROR", "Invalid user config / ユーザ設定の形式が正しくないようです", "config_util.py:375") in events
    )
    (tb,) = only(events, Traceback)
    assert tb.exc_type == "voluptuous.error.MultipleInvalid"
    assert tb.message == "extra keys not allowed @ data['datasets'][0]['subsets'][0]['num_repeat']"
    assert tb.text.startswith("Traceback (most recent call last):\n  File ")
    assert tb.text.endswith(tb.exc_type + ": " + tb.message)


def check_invalid_cli_arg_accelerate(events: list[Event]) -> None:
    assert only(events, UsageError) == [UsageError("train_network.py", "unrecognized arguments: --netwrk_dim 8")]
    (tb,) = only(events, Traceback)
    assert tb.exc_type == "subprocess.CalledProcessError"
    assert events[-1] == LauncherFailed(
        2,
        "['/home/artist/lora/venv/bin/python3', 'train_network.py', '--config_file', "
        "'/home/artist/lora/configs/train_lora.toml', '--netwrk_dim', '8']",
    )
    assert only(events, Line)[0].text.startswith("The following values were not passed to `accelerate launch`")


def check_model_path_missing(events: list[Event]) -> None:
    (tb,) = only(events, Traceback)
    assert tb.exc_type == "ValueError"
    assert tb.message.startswith(
        'The provided pretrained_model_name_or_path "/home/artist/lora/models/missing.safetensors" is neither'
    )
    assert (
        LogRecord(
            "INFO",
            "load Diffusers pretrained models: /home/artist/lora/models/missing.safetensors",
            "train_util.py:5536",
        )
        in events
    )


def check_no_tokenizer_offline(events: list[Event]) -> None:
    (tb,) = only(events, Traceback)
    assert (tb.exc_type, tb.message) == ("TypeError", "expected str, bytes or os.PathLike object, not NoneType")


def check_locon_lycoris_4(events: list[Event]) -> None:
    # The LyCORIS logger writes ANSI colour to a pipe: "...|[LyCORIS]-\x1b[0;32mINFO\x1b[0m: ..."
    lycoris = [r for r in only(events, LogRecord) if r.location == "LyCORIS"]
    assert lycoris[0] == LogRecord("INFO", "Using rank adaptation algo: locon", "LyCORIS", "2026-11-28 02:31:58")
    assert [r.message.split(":")[0] for r in lycoris if r.level == "WARNING"] == ["Text Encoder", "UNet"]
    first, wrapper = only(events, Traceback)
    assert (first.exc_type, first.message) == (
        "AssertionError",
        "duplicated lora name: lora_unet_time_embedding_linear_1",
    )
    assert wrapper.exc_type == "subprocess.CalledProcessError"
    assert only(events, LauncherFailed)[0].returncode == 1
    assert not only(events, Step)


def check_loha(events: list[Event]) -> None:
    steps = only(events, Step)
    assert (steps[-1].step, steps[-1].avr_loss) == (12, 0.963)
    assert steps[-1].rate == pytest.approx(1 / 21.97)
    assert [c.path.name for c in only(events, CheckpointSaved)] == [
        "tiny_loha-000001.safetensors",
        "tiny_loha.safetensors",
    ]
    assert only(events, TrainingSummary)[0].total_steps == 12


def check_plain_python(events: list[Event]) -> None:
    assert [c.path.name for c in only(events, CheckpointSaved)] == [
        "from_cli-000001.safetensors",
        "from_cli.safetensors",
    ]
    assert only(events, Step)[-1].step == 36 and only(events, TrainingSummary)[0].total_steps == 36
    assert only(events, ModelSaved)


def check_console_log_simple(events: list[Event]) -> None:
    """--console_log_simple: the logs are plain stdout lines, except the very first, which
    goes through rich before the reconfiguration (wider than 80 columns here)."""
    assert only(events, LogRecord) == [
        LogRecord(
            "INFO",
            "Loading settings from /home/artist/lora/configs/train_lora.toml...",
            "train_util.py:4744",
            "2026-11-28 03:00:11",
        )
    ]
    assert Line("stdout", "Failed to get git commit hash, using fallback") in events
    assert only(events, EpochStarted) == [EpochStarted(1, 1)]
    assert only(events, ModelSaved) and only(events, Step)[-1].step == 6


def check_output_config(events: list[Event]) -> None:
    assert events == [
        LogRecord(
            "INFO",
            "Saved config file / 設定ファイルを保存しました: /home/artist/lora/out/output_config_written.toml",
            "train_util.py:4737",
            "2026-11-28 03:08:07",
        )
    ]


def check_sigint(events: list[Event]) -> None:
    """SIGINT to the group: "...avr_loss=1.04]Traceback (most recent call last):" in the child,
    then the launcher's own KeyboardInterrupt, then tqdm closes the bar."""
    child, launcher = only(events, Traceback)
    assert (child.exc_type, launcher.exc_type) == ("KeyboardInterrupt", "KeyboardInterrupt")
    assert "progress_bar.set_postfix" in child.text and "process.wait()" in launcher.text
    steps = only(events, Step)
    assert (steps[-1].step, steps[-1].avr_loss) == (3, 1.08)
    assert not only(events, CheckpointSaved)


def check_sigterm_leader(events: list[Event]) -> None:
    """SIGTERM to the launcher alone: its output just stops (the orphaned child trained on)."""
    assert only(events, Step)[-1].step == 10
    assert not only(events, Traceback) and not only(events, ModelSaved)


def check_resize_lora(events: list[Event]) -> None:
    bars = only(events, Progress)
    assert (bars[-1].n, bars[-1].total, bars[-1].desc) == (792, 792, "")
    assert (
        LogRecord(
            "INFO", "saving model to: /home/artist/lora/runs/tools/tiny_lora_rank2.safetensors", "resize_lora.py:370"
        )
        in events
    )


def check_show_metadata(events: list[Event]) -> None:
    assert {type(e) for e in events} == {Line}
    assert json.loads("\n".join(e.text for e in only(events, Line)))["modelspec.title"] == "tiny_lora"


def check_typo_key(events: list[Event]) -> None:
    """An unknown key in the --config_file TOML is silently kept: the run trains (rc 0)."""
    assert [c.path.name for c in only(events, CheckpointSaved)] == ["tiny_lora.safetensors"]
    assert only(events, ModelSaved)


def check_torch_oom_nan(events: list[Event]) -> None:
    steps = only(events, Step)
    assert [s.avr_loss for s in steps[:5]] == [None, None, 1.01, 1.01, 1.02]
    assert steps[6].avr_loss is not None and math.isnan(steps[6].avr_loss)
    assert only(events, NanLoss) == [NanLoss(3)]  # once, although nan stays on the bar
    (tb,) = only(events, Traceback)  # glued to the frame: "...avr_loss=nan]Traceback (most recent"
    assert tb.exc_type == "torch.OutOfMemoryError"
    (oom,) = only(events, OutOfMemory)
    assert oom.message.startswith("CUDA out of memory. Tried to allocate 186.27 GiB.")
    assert events.index(oom) == events.index(tb) + 1


def check_module_not_found(events: list[Event]) -> None:
    assert events[-1] == ModuleNotFound("lycoris", "No module named 'lycoris'")


def check_chained_exception(events: list[Event]) -> None:
    (tb,) = only(events, Traceback)
    assert (tb.exc_type, tb.message) == ("RuntimeError", "could not read the dataset config")
    assert "FileNotFoundError: [Errno 2]" in tb.text and "direct cause" in tb.text


def check_oom_killer(events: list[Event]) -> None:
    """The training process SIGKILLed (as by the out-of-memory killer) under accelerate, which exits 1: the
    only word of the signal is accelerate's CalledProcessError."""
    (wrapper,) = only(events, Traceback)
    assert wrapper.exc_type == "subprocess.CalledProcessError" and wrapper.message.endswith(
        "died with <Signals.SIGKILL: 9>."
    )
    assert events[-1] == LauncherFailed(
        -9,
        "['/home/artist/lora/venv/bin/python', '/home/artist/lora/sd-scripts/train_network.py', '--config_file', "
        "'/home/artist/lora/configs/config.toml', '--tokenizer_cache_dir', '/home/artist/lora/models/tokenizer_cache']",
    )
    assert [(s.step, s.avr_loss) for s in only(events, Step)][-2:] == [(3, 1.2), (3, 1.15)]
    latents = [p for p in only(events, Progress) if p.stage == "caching latents"]
    assert [(p.n, p.total) for p in latents][-1] == (4, 4)


def check_sdxl_buckets(events: list[Event]) -> None:
    """sdxl_train_network.py on a GPU through `artlab-kohya run`: the same stream as train_network.py's."""
    assert only(events, TrainingSummary) == [TrainingSummary(48, 0, 0, 12, 2, (4,), 1, 24)]
    assert only(events, EpochStarted) == [EpochStarted(1, 2), EpochStarted(2, 2)]
    steps = only(events, Step)
    assert len(steps) == 50 and (steps[-1].step, steps[-1].total, steps[-1].avr_loss) == (24, 24, 1.07)
    names = [c.path.name for c in only(events, CheckpointSaved)]
    assert names == ["tiny_lora-000001.safetensors", "tiny_lora.safetensors"]
    assert only(events, ModelSaved) == [ModelSaved()]
    assert warnings(events) == ["no regularization images / 正則化画像が見つかりませんでした"]


def check_flux_lora(events: list[Event]) -> None:
    """flux_train_network.py on a GPU through `artlab-kohya run`: one epoch cut short by max_train_steps."""
    assert only(events, TrainingSummary) == [TrainingSummary(160, 0, 0, 80, 1, (2,), 1, 30)]
    assert only(events, EpochStarted) == [EpochStarted(1, 1)]
    steps = only(events, Step)
    assert (steps[-1].step, steps[-1].total, steps[-1].avr_loss) == (30, 30, 1.11)
    assert [c.path.name for c in only(events, CheckpointSaved)] == ["tiny_lora.safetensors"]
    assert only(events, ModelSaved) == [ModelSaved()]


def check_tiny_cpu(last_loss: float) -> Callable[[list[Event]], None]:
    """sd3/flux_train_network.py on a CPU through `artlab-kohya run`: a tiny model, two epochs of five steps."""

    def check(events: list[Event]) -> None:
        assert only(events, TrainingSummary) == [TrainingSummary(20, 0, 0, 5, 2, (4,), 1, 10)]
        assert only(events, EpochStarted) == [EpochStarted(1, 2), EpochStarted(2, 2)]
        steps = only(events, Step)
        assert (steps[-1].step, steps[-1].total, steps[-1].avr_loss) == (10, 10, last_loss)
        names = [c.path.name for c in only(events, CheckpointSaved)]
        assert names == ["tiny_lora-000001.safetensors", "tiny_lora.safetensors"]
        assert only(events, ModelSaved) == [ModelSaved()]

    return check


def check_sd3_gpu(events: list[Event]) -> None:
    """sd3_train_network.py on an H200 through `artlab-kohya run` (plain, blocks swapped, LyCORIS locon):
    one epoch cut short by max_train_steps, the same losses in all three."""
    assert only(events, TrainingSummary) == [TrainingSummary(160, 0, 0, 80, 1, (2,), 1, 30)]
    assert only(events, EpochStarted) == [EpochStarted(1, 1)]
    steps = only(events, Step)
    assert (steps[-1].step, steps[-1].total, steps[-1].avr_loss) == (30, 30, 1.55)
    assert [c.path.name for c in only(events, CheckpointSaved)] == ["tiny_lora.safetensors"]
    assert only(events, ModelSaved) == [ModelSaved()]


def check_two_gpus(events: list[Event]) -> None:
    """train_network.py on two H200s (both ranks' output): the batches of an epoch split between them,
    one step bar (rank 0's), each checkpoint said once."""
    assert only(events, TrainingSummary) == [TrainingSummary(640, 0, 0, 40, 2, (8,), 1, 80)]
    assert only(events, EpochStarted) == [EpochStarted(1, 2), EpochStarted(2, 2)]
    steps = only(events, Step)
    assert (steps[-1].step, steps[-1].total) == (80, 80)
    names = [c.path.name for c in only(events, CheckpointSaved)]
    assert names == ["tiny_lora-000001.safetensors", "tiny_lora.safetensors"]


EXPECTATIONS: dict[str, Callable[[list[Event]], None]] = {
    "lora": check_lora,
    "fail_dataset_missing_dir": check_missing_dataset_dir,
    "fail_dataset_unknown_key": check_unknown_dataset_key,
    "fail_invalid_cli_arg_accelerate": check_invalid_cli_arg_accelerate,
    "fail_model_path_missing": check_model_path_missing,
    "fail_no_tokenizer_offline": check_no_tokenizer_offline,
    "locon_lycoris4.1.3_FAIL": check_locon_lycoris_4,
    "loha": check_loha,
    "lora_plain_python": check_plain_python,
    "lora_console_log_simple": check_console_log_simple,
    "output_config": check_output_config,
    "sigint_accelerate_group_popen": check_sigint,
    "sigterm_accelerate_leader": check_sigterm_leader,
    "tool_resize_lora": check_resize_lora,
    "tool_show_metadata": check_show_metadata,
    "typo_key_in_config_file": check_typo_key,
    "torch_oom_nan": check_torch_oom_nan,
    "module_not_found": check_module_not_found,
    "chained_exception": check_chained_exception,
    "sdxl_buckets": check_sdxl_buckets,
    "flux_lora": check_flux_lora,
    "sd3_tiny_cpu": check_tiny_cpu(1.39),
    "sd3_medium_tiny_cpu": check_tiny_cpu(1.39),
    "flux_schnell_tiny_cpu": check_tiny_cpu(1.48),
    "sd3_locon_tiny_cpu": check_tiny_cpu(1.37),
    "oom_killer_accelerate": check_oom_killer,
    "sd3_lora": check_sd3_gpu,
    "sd3_swap_lora": check_sd3_gpu,
    "sd3_locon_lora": check_sd3_gpu,
    "lora_two_gpus": check_two_gpus,
}


def test_a_checkpoint_line_cut_off_by_the_end_of_the_output_is_no_checkpoint() -> None:
    """A trainer killed while printing "saving checkpoint: PATH" leaves part of the path: a line, not a save."""
    parser = Parser()
    events = parser.feed("stdout", "epoch 2/2\nsaving checkpoint: /runs/a/checkpoints/dog-see")
    events += parser.close()
    assert not any(isinstance(e, CheckpointSaved) for e in events)
    assert Line("stdout", "saving checkpoint: /runs/a/checkpoints/dog-see") in events
    whole = Parser()
    events = whole.feed("stdout", "saving checkpoint: /runs/a/checkpoints/dog.safetensors\n") + whole.close()
    assert CheckpointSaved(Path("/runs/a/checkpoints/dog.safetensors")) in events
