"""spawn() with real child processes: tests/replay.py plays recorded sd-scripts runs back."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from artlab_kohya.trainer.process import spawn

TESTS = Path(__file__).parent
REPLAY = TESTS / "replay.py"
TRANSCRIPTS = TESTS / "data" / "transcripts"
STREAM = TESTS / "data" / "streams" / "lora_unbuffered.json"
ANNOUNCE = re.compile(r"replay (?P<role>\w+): pid=(?P<pid>\d+) pgid=(?P<pgid>\d+) sigint=(?P<sigint>\w+)")


class Run:
    """One spawn() of the replay; `when` maps a predicate on the output so far to an action."""

    def __init__(self, tmp_path: Path, *args: str, grace: float = 10.0, when=None, react_once: bool = True):
        self.chunks: list[tuple[float, str, str]] = []
        self.text = {"stdout": "", "stderr": ""}
        self.when, self.fired = when, False
        start = time.monotonic()
        argv = [sys.executable, str(REPLAY), *args]
        self.rc = spawn(argv, dict(os.environ), tmp_path, self.on_output, grace=grace)
        self.elapsed = time.monotonic() - start

    def on_output(self, stream: str, text: str) -> None:
        self.chunks.append((time.monotonic(), stream, text))
        self.text[stream] += text
        if self.when and not self.fired and self.when[0](self):
            self.fired = True
            self.when[1](self)

    @property
    def announced(self) -> dict[str, re.Match[str]]:
        return {m["role"]: m for m in ANNOUNCE.finditer(self.text["stderr"])}


def both_announced(run: Run) -> bool:
    return {"launcher", "engine"} <= set(run.announced)


def signal_us(signum: int):
    return lambda run: os.kill(os.getpid(), signum)


def assert_group_gone(pgid: int, timeout: float = 5.0) -> None:
    """The leader is reaped by spawn; an orphaned grandchild by PID 1, which may take a moment
    (about 2 s in the sandbox these tests were written in)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"process group {pgid} still has processes")


def transcript(name: str) -> str:
    return str(TRANSCRIPTS / name)


def expected(name: str, stream: str) -> str:
    return (TRANSCRIPTS / f"{name}.{stream}").read_bytes().decode("utf-8", errors="replace")


# --- output -------------------------------------------------------------------------------


def test_output_arrives_complete_and_in_order(tmp_path: Path) -> None:
    """The replay cuts lines, frames and UTF-8 sequences (█, 学習) at random places."""
    run = Run(tmp_path, transcript("lora"), "--duration", "0.5")
    assert run.rc == 0
    assert run.text == {"stdout": expected("lora", "stdout"), "stderr": expected("lora", "stderr")}
    assert "\ufffd" not in run.text["stderr"]
    assert len(run.chunks) > 20


def test_a_frame_without_newline_arrives_at_once(tmp_path: Path) -> None:
    """Real arrival times, 46.7 s scaled to 3 s: the bar's frames end in "]", never in a newline,
    and each must be handed on when written, not when the next line comes."""
    run = Run(tmp_path, str(STREAM), "--duration", "3")
    assert run.rc == 0
    stderr = [(t, text) for t, stream, text in run.chunks if stream == "stderr"]
    frame = next(
        i for i, (_, text) in enumerate(stderr) if text.endswith("2/12 [00:03<00:15,  1.59s/it, avr_loss=1.04]")
    )
    assert stderr[frame + 1][1].startswith("\rsteps:  25%")
    assert stderr[frame + 1][0] - stderr[frame][0] > 0.05  # 1.45 s apart in the recording
    assert "\r" in run.text["stderr"] and run.text["stdout"].count("\nepoch ") == 2


# --- exit status --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "rc"),
    [
        (["lora"], 0),
        (["fail_dataset_missing_dir"], 0),  # "No data found" exits 0
        (["fail_dataset_unknown_key"], 1),
        (["fail_invalid_cli_arg_accelerate", "--rc", "2"], 2),  # argparse, run without accelerate
        (["fail_invalid_cli_arg_accelerate", "--rc", "2", "--launcher"], 1),  # accelerate turns 2 into 1
        (["sigint_accelerate_group_popen"], 130),  # recorded rc -2: killed by SIGINT
        (["lora", "--rc", "-9"], 137),
    ],
)
def test_exit_status(tmp_path: Path, args: list[str], rc: int) -> None:
    run = Run(tmp_path, transcript(args[0]), *args[1:], "--duration", "0.1")
    assert run.rc == rc


# --- signals ------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "rc"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_us_stops_the_whole_group(tmp_path: Path, signum: int, rc: int) -> None:
    run = Run(
        tmp_path,
        transcript("lora"),
        "--launcher",
        "--announce",
        "--duration",
        "30",
        when=(both_announced, signal_us(signum)),
    )
    assert run.rc == rc
    assert run.elapsed < 5  # both die of the SIGINT; nothing had to be escalated
    launcher, engine = run.announced["launcher"], run.announced["engine"]
    assert launcher["pgid"] == engine["pgid"] == launcher["pid"]
    assert_group_gone(int(launcher["pgid"]))
    assert "KeyboardInterrupt" in run.text["stderr"]  # the launcher's wait(), like accelerate's


def test_a_group_that_ignores_sigint_is_terminated_after_the_bound(tmp_path: Path) -> None:
    run = Run(
        tmp_path,
        transcript("lora"),
        "--launcher",
        "--announce",
        "--ignore-sigint",
        "--duration",
        "30",
        grace=0.5,
        when=(both_announced, signal_us(signal.SIGINT)),
    )
    assert run.rc == 130
    assert 0.5 <= run.elapsed < 4
    assert run.announced["engine"]["sigint"] == "ignored"
    assert_group_gone(int(run.announced["launcher"]["pgid"]))


def test_a_group_that_ignores_sigint_and_sigterm_is_killed(tmp_path: Path) -> None:
    run = Run(
        tmp_path,
        transcript("lora"),
        "--launcher",
        "--announce",
        "--ignore-sigint",
        "--ignore-sigterm",
        "--duration",
        "30",
        grace=0.3,
        when=(both_announced, signal_us(signal.SIGINT)),
    )
    assert run.rc == 130
    assert 0.6 <= run.elapsed < 4
    assert_group_gone(int(run.announced["launcher"]["pgid"]))


def test_the_orphan_of_a_launcher_killed_alone_is_stopped(tmp_path: Path) -> None:
    """As in transcripts/sigterm_accelerate_leader: SIGTERM to accelerate alone orphans the
    training process, which keeps going. spawn sees its leader gone and stops the rest."""

    def kill_launcher(run: Run) -> None:
        os.kill(int(run.announced["launcher"]["pid"]), signal.SIGTERM)

    run = Run(
        tmp_path,
        transcript("lora"),
        "--launcher",
        "--announce",
        "--duration",
        "30",
        grace=0.5,
        when=(both_announced, kill_launcher),
    )
    assert run.rc == 143  # the launcher's own death by SIGTERM
    assert run.elapsed < 5
    assert_group_gone(int(run.announced["launcher"]["pgid"]))


def test_an_inherited_ignored_sigint_is_not_passed_on(tmp_path: Path) -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored, and an ignored
    signal survives exec: the engine would shrug off Ctrl-C (transcript_sigint_IGNORED_by_bg_shell)."""
    argv = [sys.executable, str(REPLAY), transcript("output_config"), "--announce", "--duration", "0"]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        inherited = subprocess.run(argv, capture_output=True, text=True, check=True).stderr
        run = Run(tmp_path, transcript("output_config"), "--announce", "--duration", "0")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert re.findall(r"sigint=(\w+)", inherited) == ["ignored"]  # what plain Popen passes on
    assert run.announced["engine"]["sigint"] == "python"  # started with SIG_DFL: KeyboardInterrupt


def test_an_error_in_the_callback_kills_the_group(tmp_path: Path) -> None:
    announced: list[str] = []

    def on_output(stream: str, text: str) -> None:
        announced.append(text)
        if ANNOUNCE.search("".join(announced)):
            raise RuntimeError("display broke")

    argv = [sys.executable, str(REPLAY), transcript("lora"), "--launcher", "--announce", "--duration", "30"]
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="display broke"):
        spawn(argv, dict(os.environ), tmp_path, on_output)
    assert time.monotonic() - start < 5
    assert_group_gone(int(re.findall(r"pgid=(\d+)", "".join(announced))[0]))
