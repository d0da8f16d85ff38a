"""The run folder: everything that reproduces a run, written before launch and updated atomically.

    runs/<name>/<YYYYmmdd-HHMMSS>-<id>/
        spec.yaml          the spec as given
        spec.lock.yaml     fully resolved: model commit + sha256, kohya commit, versions, argv, seed
        dataset.toml, config.toml (prompts.txt)   what sd-scripts read
        stdout.log, stderr.log                    the trainer's raw output
        events.jsonl       parsed events: time, epoch, step, loss, it/s, checkpoints, problems
        result.json        running | succeeded | failed | interrupted, exit code, diagnosis, checkpoints
        checkpoints/       the LoRA files (unless output.dir says otherwise)

A run folder is created new (never reused) and nothing in it is written by another run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import socket
import time
from pathlib import Path
from typing import IO, Any

import yaml

from ..files import write_atomic

LOCK_FILE = "spec.lock.yaml"
RESULT_FILE = "result.json"
EVENTS_FILE = "events.jsonl"
RESULT_RESERVE = 16 * 1024  # bytes kept in result.json for its final state (see write_result)
SECRET = re.compile(r"token|secret|password|api_key|apikey", re.IGNORECASE)


def redact(env: dict[str, str]) -> dict[str, str]:
    """Environment for the record: anything that looks like a credential is never written."""
    return {k: ("<redacted>" if SECRET.search(k) else v) for k, v in env.items()}


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {"type": type(value).__name__}
        out.update({f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)})
        return out
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return "nan"
    return value


class RunFolder:
    """One run's folder. Created fresh; the logs and events are appended as the run goes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._logs: dict[str, IO[str]] = {}
        self._events: IO[str] | None = None
        self._start = time.monotonic()

    @classmethod
    def create(cls, runs_root: Path, name: str) -> RunFolder:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for _ in range(10):
            path = runs_root / name / f"{stamp}-{secrets.token_hex(3)}"
            try:
                path.mkdir(parents=True, exist_ok=False)
            except FileExistsError:
                continue
            return cls(path)
        raise FileExistsError(f"could not make a new run folder under {runs_root / name}")

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        write_atomic(path, text)
        return path

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        return self.write_text(name, json.dumps(_jsonable(data), indent=2, ensure_ascii=False) + "\n")

    def write_result(self, data: dict[str, Any]) -> None:
        """result.json, written so that its last state can still be recorded on a full disk: the file
        keeps RESULT_RESERVE bytes (JSON padded with spaces), and when a new file cannot be written the
        old one is overwritten in place, inside the blocks it already holds."""
        text = json.dumps(_jsonable(data), indent=2, ensure_ascii=False) + "\n"
        body = text.encode("utf-8")
        padded = body + b" " * max(0, RESULT_RESERVE - len(body))
        path = self.path / RESULT_FILE
        try:
            write_atomic(path, padded)
        except OSError:
            if len(body) > RESULT_RESERVE or not path.exists():
                raise
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, padded, 0)  # same length as before: no new blocks needed
                os.fsync(fd)
            finally:
                os.close(fd)

    def write_yaml(self, name: str, data: dict[str, Any], header: str = "") -> Path:
        body = yaml.safe_dump(_jsonable(data), sort_keys=False, allow_unicode=True, width=100)
        return self.write_text(name, header + body)

    def log(self, stream: str, text: str) -> None:
        handle = self._logs.get(stream)
        if handle is None:
            handle = self._logs[stream] = (self.path / f"{stream}.log").open("a", encoding="utf-8")
        handle.write(text)
        handle.flush()

    def event(self, event: Any) -> None:
        if self._events is None:
            self._events = (self.path / EVENTS_FILE).open("a", encoding="utf-8")
        record = {"t": round(time.monotonic() - self._start, 3), **_jsonable(event)}
        self._events.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._events.flush()

    def close(self) -> None:
        for handle in self._logs.values():
            handle.close()
        if self._events is not None:
            self._events.close()
        self._logs, self._events = {}, None


def owner() -> dict[str, Any]:
    """Who is running a run, recorded in result.json while it runs: a `running` run whose process is
    gone was abandoned (its wrapper was killed with no chance to record the end)."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def alive_here(record: dict[str, Any]) -> bool | None:
    """Whether the process an `owner()` record names still exists: None when the record is from another
    host (or has no pid), so nothing can be told from here."""
    pid, host = record.get("pid"), record.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # alive, someone else's; or not a pid at all
        return True
    return True


def status_of(result: dict[str, Any]) -> str:
    """The status to show: result.json's, except `abandoned` for a `running` run whose wrapper process
    no longer exists on this host (a run on another host, or without pid and host, is taken at its word)."""
    status = str(result.get("status") or "unknown")
    return "abandoned" if status == "running" and alive_here(result) is False else status


class OutputClaim:
    """An exclusive claim on `<output.dir>/<output.name>*` for one run, so two runs sharing an output
    folder cannot both pass the "never overwrite" check and then overwrite each other's checkpoints.

    The claim is a file created with O_EXCL; a claim whose run process is gone (killed) is stale and
    taken over. Released when the run ends.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def take(cls, output_dir: Path, name: str) -> OutputClaim:
        output_dir.mkdir(parents=True, exist_ok=True)
        path = output_dir / f".{name}.artlab-claim"
        record = json.dumps(owner())
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    held = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    held = {}
                if status_of({"status": "running", **held}) == "running":
                    who = f"another run (process {held.get('pid')} on {held.get('host')})" if held else "another run"
                    raise ClaimError(who) from None
                path.unlink(missing_ok=True)  # stale: its run was killed
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(record)
            return cls(path)
        raise ClaimError("another run")

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


class ClaimError(Exception):
    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder
