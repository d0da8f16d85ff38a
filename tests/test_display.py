"""The display, fed the events of real transcripts."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from replay import parse_transcript
from rich.console import Console

from artlab_kohya.run.display import Display, EpochRecord
from artlab_kohya.trainer.output import CheckpointSaved, EpochStarted, Event, Parser, Step

DATA = Path(__file__).parent / "data"
TRANSCRIPTS = DATA / "transcripts"
RUNS = Path("/home/artist/lora/runs")


def transcript_events(name: str) -> list[Event]:
    stdout, stderr = ((TRANSCRIPTS / f"{name}.{s}").read_text(encoding="utf-8") for s in ("stdout", "stderr"))
    return parse_transcript(stdout, stderr)


def arrival_events() -> list[Event]:
    """The lora run of stream_unbuffered.json, parsed in the order its two pipes delivered it."""
    recorded = json.loads((DATA / "streams" / "lora_unbuffered.json").read_text(encoding="utf-8"))
    parser = Parser()
    events = [e for _, stream, text in recorded["events"] for e in parser.feed(stream, text)]
    return events + parser.close()


def show(events: list[Event], **options) -> tuple[list[str], list[EpochRecord]]:
    out = io.StringIO()
    display = Display(Console(file=out, width=80), clock=lambda: 0.0, **options)  # not a terminal: plain
    for event in events:
        display.handle(event)
    records = display.finish()
    text = out.getvalue()
    assert "\x1b" not in text
    return text.splitlines(), records


def test_plain_lines_as_the_run_arrived() -> None:
    lines, records = show(arrival_events())
    assert lines == [
        "WARNING: no regularization images / 正則化画像が見つかりませんでした",
        "training: 6 images (with repeats), 6 batches per epoch, 2 epochs, batch size 1, 12 steps",
        "epoch 1/2",
        "step 1/12 (8%)  avr_loss 1.1  1.65 s/it  elapsed 0:01  remaining 0:18",
        "step 2/12 (17%)  avr_loss 1.04  1.59 s/it  elapsed 0:03  remaining 0:15",
        "step 3/12 (25%)  avr_loss 1.09  1.54 s/it  elapsed 0:04  remaining 0:13",
        "step 4/12 (33%)  avr_loss 1.1  1.51 s/it  elapsed 0:06  remaining 0:12",
        "step 5/12 (42%)  avr_loss 1.13  1.48 s/it  elapsed 0:07  remaining 0:10",
        "step 6/12 (50%)  avr_loss 1.12  1.43 s/it  elapsed 0:08  remaining 0:08",
        "saved checkpoint: /home/artist/lora/runs/stream_unbuffered/tiny_lora-000001.safetensors",
        "epoch 2/2",
        # A log record ends when the next stderr line begins: here after stdout's "epoch 2/2".
        "WARNING: Failed to get git commit hash, using fallback",
        "step 8/12 (67%)  avr_loss 1.1  1.41 s/it  elapsed 0:11  remaining 0:05",
        "step 9/12 (75%)  avr_loss 1.1  1.41 s/it  elapsed 0:12  remaining 0:04",
        "step 10/12 (83%)  avr_loss 1.08  1.40 s/it  elapsed 0:14  remaining 0:02",
        "step 11/12 (92%)  avr_loss 1.04  1.40 s/it  elapsed 0:15  remaining 0:01",
        "step 12/12 (100%)  avr_loss 1.03  1.40 s/it  elapsed 0:16  remaining 0:00",
        "saved checkpoint: /home/artist/lora/runs/stream_unbuffered/tiny_lora.safetensors",
        "WARNING: Failed to get git commit hash, using fallback",
        "model saved",
        "epoch 1: avr_loss 1.12, /home/artist/lora/runs/stream_unbuffered/tiny_lora-000001.safetensors",
        "epoch 2: avr_loss 1.03, /home/artist/lora/runs/stream_unbuffered/tiny_lora.safetensors",
    ]
    assert records == [
        EpochRecord(1, 1.12, RUNS / "stream_unbuffered/tiny_lora-000001.safetensors"),
        EpochRecord(2, 1.03, RUNS / "stream_unbuffered/tiny_lora.safetensors"),
    ]


def test_plain_lines_for_the_lora_transcript() -> None:
    """A transcript has no interleaving (stdout's events come first), yet each epoch's loss is
    right: the summary says how many steps make an epoch."""
    lines, records = show(transcript_events("lora"))
    assert lines == [
        "training: 60 images (with repeats), 60 batches per epoch, 2 epochs, batch size 1, 120 steps",
        "epoch 1/2",
        "saved checkpoint: /home/artist/lora/runs/lora/tiny_lora-000001.safetensors",
        "epoch 2/2",
        "saved checkpoint: /home/artist/lora/runs/lora/tiny_lora.safetensors",
        "WARNING: no regularization images / 正則化画像が見つかりませんでした",
        "step 1/120 (1%)  avr_loss 1.11  1.92 s/it  elapsed 0:01  remaining 3:48",
        "step 12/120 (10%)  avr_loss 1.08  1.56 s/it  elapsed 0:18  remaining 2:48",
        "step 24/120 (20%)  avr_loss 1.07  1.44 s/it  elapsed 0:34  remaining 2:18",
        "step 36/120 (30%)  avr_loss 1.07  1.39 s/it  elapsed 0:49  remaining 1:56",
        "step 48/120 (40%)  avr_loss 1.07  1.36 s/it  elapsed 1:05  remaining 1:37",
        "step 60/120 (50%)  avr_loss 1.06  1.34 s/it  elapsed 1:20  remaining 1:20",
        "WARNING: Failed to get git commit hash, using fallback",
        "step 72/120 (60%)  avr_loss 1.03  1.34 s/it  elapsed 1:36  remaining 1:04",
        "step 84/120 (70%)  avr_loss 1.01  1.34 s/it  elapsed 1:52  remaining 0:48",
        "step 96/120 (80%)  avr_loss 0.991  1.32 s/it  elapsed 2:06  remaining 0:31",
        "step 108/120 (90%)  avr_loss 0.963  1.35 s/it  elapsed 2:26  remaining 0:16",
        "step 120/120 (100%)  avr_loss 0.942  1.35 s/it  elapsed 2:42  remaining 0:00",
        "WARNING: Failed to get git commit hash, using fallback",
        "model saved",
        "epoch 1: avr_loss 1.06, /home/artist/lora/runs/lora/tiny_lora-000001.safetensors",
        "epoch 2: avr_loss 0.942, /home/artist/lora/runs/lora/tiny_lora.safetensors",
    ]
    assert [r.avr_loss for r in records] == [1.06, 0.942]


def test_plain_step_lines_also_come_with_time() -> None:
    """Every `interval` seconds a step line is due, though no 10% mark was passed; never twice
    for one step (tqdm prints each step twice)."""
    ticks = iter(range(0, 10_000, 20))
    out = io.StringIO()
    display = Display(Console(file=out, width=80), interval=30, clock=lambda: next(ticks))
    for event in transcript_events("lora"):
        display.handle(event)
    display.finish()
    steps = [line.split()[1] for line in out.getvalue().splitlines() if line.startswith("step ")]
    assert len(steps) == len(set(steps)) > 40


def test_problems_in_plain_lines() -> None:
    missing, records = show(transcript_events("fail_dataset_missing_dir"))
    assert missing[-2].startswith("ERROR: No data found. Please verify arguments")
    assert missing[-1] == "hint: no training images were found; sd-scripts still exits 0 and writes no file"
    assert records == []

    oom, _ = show(transcript_events("torch_oom_nan"))
    assert "WARNING: the average loss became nan at step 3; the run is not learning" in oom
    assert oom[-2].startswith("error: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 186.27 GiB.")
    assert oom[-1].startswith("hint: out of GPU memory")

    # The engine's error, not accelerate's CalledProcessError around it.
    assert show(transcript_events("fail_invalid_cli_arg_accelerate"))[0] == [
        "error: train_network.py: unrecognized arguments: --netwrk_dim 8"
    ]
    assert show(transcript_events("locon_lycoris4.1.3_FAIL"))[0][-1] == (
        "error: AssertionError: duplicated lora name: lora_unet_time_embedding_linear_1"
    )
    assert show(transcript_events("module_not_found"))[0] == [
        "error: ModuleNotFoundError: No module named 'lycoris'",
        "hint: the Python module 'lycoris' is missing from the sd-scripts environment",
    ]
    # Our own Ctrl-C: no error lines, and the partial epoch keeps its latest loss.
    interrupted, records = show(transcript_events("sigint_accelerate_group_popen"))
    assert not [line for line in interrupted if line.startswith("error")]
    assert records == [EpochRecord(1, 1.08, None)]


def test_checkpoint_sizes_in_the_table(tmp_path: Path) -> None:
    checkpoint = tmp_path / "tiny_lora.safetensors"
    with checkpoint.open("wb") as f:
        os.truncate(f.fileno(), 9_480_000)
    lines, records = show([EpochStarted(1, 1), Step(6, 6, 9.0, 0.0, 0.67, 1.12), CheckpointSaved(checkpoint)])
    assert lines[-1] == f"epoch 1: avr_loss 1.12, {checkpoint}, 9.5 MB"
    assert records == [EpochRecord(1, 1.12, checkpoint)]


def test_live_view_on_a_terminal(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, record=True, force_terminal=True)
    display = Display(console)
    assert not display.plain
    events = transcript_events("lora")
    for event in events[: len(events) // 2]:
        display.handle(event)
    snapshot = Console(width=100, record=True, file=io.StringIO())
    snapshot.print(display._render())
    # Stdout's events came first here ("epoch 2/2" is long printed); the step tells the epoch.
    assert snapshot.export_text().startswith("epoch 1/2 ━━━━━━━━━━━                    45/120 1.37 s/it ETA 1:42")
    for event in events[len(events) // 2 :]:
        display.handle(event)
    records = display.finish()
    text = console.export_text()
    assert "\x1b[" in out.getvalue()  # a terminal gets colour and cursor movement
    assert "120/120" in text and "avr_loss 0.942" in text and "last checkpoint: tiny_lora.safetensors" in text
    assert "WARNING: Failed to get git commit hash, using fallback" in text
    table = text[text.index("epochs") :]
    assert "tiny_lora-000001.safetensors" in table and "1.06" in table and "0.942" in table
    assert [r.avr_loss for r in records] == [1.06, 0.942]
