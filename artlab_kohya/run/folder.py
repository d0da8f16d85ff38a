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
import re
import secrets
import time
from pathlib import Path
from typing import IO, Any

import yaml

from ..files import write_atomic

LOCK_FILE = "spec.lock.yaml"
RESULT_FILE = "result.json"
EVENTS_FILE = "events.jsonl"
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


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
