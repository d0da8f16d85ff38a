"""Recorded run folders for the tests of runs, show, pick and report: written in the formats run/folder.py
and run/train.py write (spec.lock.yaml with its header, events.jsonl, result.json, checkpoints/)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import yaml

from artlab_kohya.run.train import LOCK_HEADER


def safetensors(metadata: dict[str, str], payload: bytes = b"\x00" * 8) -> bytes:
    header = {
        "__metadata__": metadata,
        "w": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]},
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + payload


def recorded_run(
    root: Path,
    name: str,
    stamp: str,
    losses: list[float],  # each epoch's average loss at its last step
    *,
    steps_per_epoch: int = 10,
    status: str = "succeeded",
    saved: list[int] | None = None,  # epochs with a checkpoint (default: all)
    result_checkpoints: bool = True,
    pid: int | None = None,
    host: str | None = None,
    overrides: list[str] | None = None,
    spec_git: dict[str, Any] | None = None,
    samples: list[tuple[int, int]] | None = None,  # (epoch, prompt index)
    prompts: list[str] | None = None,
    logs: bool = False,
) -> Path:
    folder = root / name / stamp
    out = folder / "checkpoints"
    out.mkdir(parents=True)
    epochs = len(losses)
    saved = list(range(1, epochs + 1)) if saved is None else saved
    spec = {
        "version": 1,
        "model": {"source": {"type": "local", "path": "/models/base.safetensors"}, "family": "sd15"},
        "dataset": {"resolution": 512, "batch_size": 2, "subsets": [{"path": "/data/img/10_sks", "repeats": 10}]},
        "network": {"type": "lora", "dim": 16, "alpha": 8.0},
        "optimizer": {"type": "AdamW", "learning_rate": 0.0001, "unet_lr": 0.0001},
        "training": {"epochs": epochs, "seed": 42, "mixed_precision": "bf16"},
        "output": {"name": name, "dir": None, "logging_dir": None},
        "sample": {"prompts": prompts or [], "every_n_epochs": 1 if prompts else None},
        "launch": {"num_processes": 1, "gpu_ids": None},
    }
    lock = {
        "artlab_kohya": "0.1.0",
        "created": "2026-11-28T10:00:00+00:00",
        "spec_file": str(root / "spec.yaml"),
        "spec_git": spec_git,
        "overrides": overrides or [],
        "rerun_of": None,
        "spec": spec,
        "model": {
            "path": "/models/base.safetensors",
            "source": "local",
            "repo": None,
            "file": None,
            "sha256": "ab" * 32,
            "family": "sd15",
        },
        "kohya": {"dir": "/opt/sd-scripts", "commit": "48d368fa" + "0" * 32, "script": "train_network.py"},
        "argv": ["python", "-m", "accelerate.commands.launch"],
        "seed": 42,
        "plan": {
            "total_steps": epochs * steps_per_epoch,
            "epochs": epochs,
            "batches_per_epoch": steps_per_epoch,
            "steps_per_epoch": steps_per_epoch,
            "saves": [f"{name}-{e:06d}.safetensors" for e in range(1, epochs)] + [f"{name}.safetensors"],
        },
    }
    (folder / "spec.lock.yaml").write_text(LOCK_HEADER + yaml.safe_dump(lock, sort_keys=False))
    lines = [
        {"t": 0.1, "type": "TrainingSummary", "epochs": epochs, "steps_per_epoch": steps_per_epoch,
         "total_steps": epochs * steps_per_epoch},
    ]  # fmt: skip
    checkpoints = []
    previous = losses[0] * 1.3
    for e, loss in enumerate(losses, 1):
        lines.append({"t": e, "type": "EpochStarted", "epoch": e, "total": epochs})
        for i in range(1, steps_per_epoch + 1):
            step = (e - 1) * steps_per_epoch + i
            value = previous + (loss - previous) * i / steps_per_epoch
            lines.append({"t": e + i / 100, "type": "Step", "epoch": e, "step": step, "total": epochs * steps_per_epoch,
                          "loss": value, "it_s": 1.25})  # fmt: skip
        previous = loss
        if e in saved:
            file = out / (f"{name}.safetensors" if e == epochs else f"{name}-{e:06d}.safetensors")
            file.write_bytes(safetensors({"ss_output_name": name, "ss_epoch": str(e), "ss_network_dim": "16"}))
            lines.append({"t": e + 0.5, "type": "CheckpointSaved", "path": str(file)})
            checkpoints.append(
                {"file": str(file), "epoch": e, "avr_loss": loss, "size": file.stat().st_size, "sha256": sha(file)}
            )
    (folder / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    result: dict[str, Any] = {"status": status, "started": "2026-11-28T10:00:05+00:00"}
    if pid is not None:
        result |= {"pid": pid, "host": host or socket.gethostname()}
    if status != "running":
        result |= {"exit_code": 0 if status == "succeeded" else 1, "finished": "2026-11-28T10:05:05+00:00",
                   "duration_s": 300.0, "diagnosis": None,
                   "checkpoints": checkpoints if result_checkpoints else [],
                   "final": checkpoints[-1]["file"] if checkpoints else None}  # fmt: skip
    (folder / "result.json").write_text(json.dumps(result, indent=2))
    if samples:
        (out / "sample").mkdir()
        for e, i in samples:
            (out / "sample" / f"{name}_e{e:06d}_{i:02d}_20261128100{e:03d}.png").write_bytes(png())
        (out / "sample" / f"{name}_000005_00_20261128100000.png").write_bytes(png())  # a step sample
    if logs:
        tb = folder / "logs" / "network_train20261128"
        tb.mkdir(parents=True)
        (tb / "events.out.tfevents.1764324000.host.1.0").write_bytes(b"\x00")
    return folder


def sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def png() -> bytes:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = (4).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    raw = (b"\x00" + b"\x80\x40\x20" * 4) * 4
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def dead_pid() -> int:
    """A process id that no process has (a child that has exited and been reaped)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid
