"""`artlab-kohya runs` on 1,000 recorded runs (goal: <= 1 s).

    .venv/bin/python benchmarks/bench_runs.py [--runs 1000] [--steps 1500] [--repeat 7]

Builds, in a temp folder, 1,000 run folders as `run` writes them: spec.lock.yaml (a full lock, ~4 KB),
events.jsonl (a TrainingSummary, an EpochStarted and a CheckpointSaved per epoch, and one Step line per
step: --steps of them, ~130 KB a run), result.json with ten checkpoints, and ten small checkpoint files;
one run in fifty is still `running` (half of those with a dead pid: abandoned), whose epochs are then
read from its events. A hundred of the runs belong to a sweep folder, so its values are columns.
Then times `artlab-kohya runs ROOT` (and `--json`) as fresh processes, wall clock, median of --repeat,
after one warm-up, next to `python -c pass`; prints the numbers, and the in-process split.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

EPOCHS = 10


def safetensors(name: str, epoch: int) -> bytes:
    header = {"__metadata__": {"ss_output_name": name, "ss_epoch": str(epoch)}, "w": {"dtype": "U8", "shape": [8],
              "data_offsets": [0, 8]}}  # fmt: skip
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + b"\x00" * 8


def lock(name: str, steps: int, overrides: list[str]) -> str:
    per = steps // EPOCHS
    spec = {
        "version": 1,
        "model": {"source": {"type": "local", "path": "/models/base.safetensors"}, "family": "sd15", "clip_skip": 2,
                  "v_parameterization": False, "vae": None, "allow_pickle": False},
        "dataset": {"resolution": 512, "batch_size": 4, "buckets": {"enabled": True, "min_resolution": 256,
                    "max_resolution": 1024, "step": 64, "no_upscale": False}, "caption_extension": ".txt",
                    "target_steps": 1500, "subsets": [{"path": f"/data/{name}/img/10_sks", "repeats": 10,
                    "class_tokens": "sks", "caption_extension": None, "regularization": False,
                    "shuffle_caption": True, "keep_tokens": 1, "flip_aug": False, "color_aug": False,
                    "random_crop": False, "caption_dropout_rate": 0.0, "caption_tag_dropout_rate": 0.0,
                    "caption_prefix": None, "caption_suffix": None}]},
        "network": {"type": "lora", "train": "both", "weights": None, "dropout": None, "args": {}, "dim": 32,
                    "alpha": 16.0, "conv_dim": None, "conv_alpha": None},
        "optimizer": {"type": "AdamW8bit", "learning_rate": 0.0001, "unet_lr": 0.0001, "text_encoder_lr": 5e-05,
                      "max_grad_norm": 1.0, "args": {"weight_decay": 0.01}},
        "scheduler": {"type": "cosine", "warmup_steps": None, "warmup_ratio": 0.1, "cycles": 1, "power": 1.0},
        "training": {"epochs": EPOCHS, "max_steps": None, "save_every_n_epochs": 1, "mixed_precision": "bf16",
                     "save_precision": "fp16", "seed": 42, "cache_latents": "memory"},
        "output": {"name": name, "dir": None, "format": "safetensors", "logging_dir": None, "log_with": "tensorboard"},
        "sample": {"prompts": ["sks dog on a beach --s 28"], "every_n_epochs": 2, "sampler": "euler_a"},
        "launch": {"num_processes": 1, "gpu_ids": None, "cpu_threads": 2, "mixed_precision": None},
        "kohya": {"dir": "/opt/sd-scripts", "python": "/opt/venv/bin/python", "extra_args": {}},
    }  # fmt: skip
    data = {
        "artlab_kohya": "0.1.0",
        "created": "2026-11-28T10:00:00+00:00",
        "spec_file": "/projects/dog/spec.yaml",
        "spec_git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
        "overrides": overrides,
        "rerun_of": None,
        "spec": spec,
        "model": {"path": "/models/base.safetensors", "source": "local", "repo": None, "file": None,
                  "revision_requested": None, "commit": None, "sha256": "ab" * 32, "size": 2132625894,
                  "family": "sd15"},
        "kohya": {"dir": "/opt/sd-scripts", "commit": "48d368fa557731ad0488c07304dfeba8c07910eb",
                  "script": "train_network.py", "python": "/opt/venv/bin/python"},
        "trainer": {"python": "3.10.12", "torch": "2.4.1", "cuda": "12.4", "gpus": [{"name": "RTX 4090"}]},
        "tokenizer_cache_dir": "/cache/tokenizers",
        "argv": ["/opt/venv/bin/python", "-m", "accelerate.commands.launch", "--num_processes", "1"],
        "env": {"PYTHONUNBUFFERED": "1"},
        "seed": 42,
        "plan": {"total_steps": steps, "epochs": EPOCHS, "batches_per_epoch": per, "steps_per_epoch": per,
                 "saves": [f"{name}-{e:06d}.safetensors" for e in range(1, EPOCHS)] + [f"{name}.safetensors"]},
    }  # fmt: skip
    return "# artlab-kohya run lock\n" + yaml.safe_dump(data, sort_keys=False, width=100)


def make_run(root: Path, i: int, steps: int, sweep: Path | None) -> tuple[str, Path]:
    name = f"lora{i // 10:03d}" if sweep is None else f"dog-dim{i}"
    folder = root / name / f"20261128-{i:06d}-{i:06x}"
    out = folder / "checkpoints"
    out.mkdir(parents=True)
    per = steps // EPOCHS
    overrides = [f"network.dim={i}", f'output.name="{name}"'] if sweep else []
    (folder / "spec.lock.yaml").write_text(lock(name, steps, overrides))
    running = i % 50 == 7
    lines = [json.dumps({"t": 1.0, "type": "TrainingSummary", "epochs": EPOCHS, "steps_per_epoch": per,
                         "total_steps": steps})]  # fmt: skip
    checkpoints = []
    for e in range(1, EPOCHS + 1):
        lines.append(json.dumps({"t": e * 10.0, "type": "EpochStarted", "epoch": e, "total": EPOCHS}))
        for s in range((e - 1) * per + 1, e * per + 1):
            loss = 0.05 + 0.1 * 0.999**s + (i % 7) * 0.002
            lines.append(json.dumps({"t": s * 0.7, "type": "Step", "epoch": e, "step": s, "total": steps,
                                     "loss": loss, "it_s": 1.4}))  # fmt: skip
        file = out / (f"{name}.safetensors" if e == EPOCHS else f"{name}-{e:06d}.safetensors")
        file.write_bytes(safetensors(name, e))
        lines.append(json.dumps({"t": e * 10.5, "type": "CheckpointSaved", "path": str(file)}))
        checkpoints.append({"file": str(file), "epoch": e, "avr_loss": loss, "size": 100, "sha256": "cd" * 32})
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
    result: dict = {"status": "running" if running else "succeeded", "started": "2026-11-28T10:00:00+00:00"}
    if running:
        result |= {"pid": 2**22 + i if i % 100 == 7 else os.getpid(), "host": platform.node()}
    else:
        result |= {"exit_code": 0, "finished": "2026-11-28T11:00:00+00:00", "duration_s": 3600.0,
                   "diagnosis": None, "problems": [], "checkpoints": checkpoints, "final": str(file)}  # fmt: skip
    (folder / "result.json").write_text(json.dumps(result, indent=2))
    return name, folder


def build(root: Path, count: int, steps: int) -> Path:
    sweep = root / "dog" / "sweep-20261128-100000"
    sweep.mkdir(parents=True)
    entries = []
    for i in range(count):
        in_sweep = i % 10 == 0
        name, folder = make_run(root, i, steps, sweep if in_sweep else None)
        if in_sweep:
            rel = os.path.relpath(folder, sweep)
            entries.append(
                {"name": name, "values": {"network.dim": i}, "status": "succeeded", "folder": rel, "attempts": [rel]}
            )
    (sweep / "sweep.json").write_text(json.dumps({"name": "dog", "matrix": ["network.dim"], "runs": entries}))
    return root


def timed(argv: list[str], repeat: int) -> list[float]:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    try:
        t0 = time.perf_counter()
        root = build(work / "runs", args.runs, args.steps)
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        print(f"built {args.runs} runs ({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
        cli = [sys.executable, "-m", "artlab_kohya", "runs", str(root)]
        for label, argv in (
            ("python -c pass", [sys.executable, "-c", "pass"]),
            (f"runs ({args.runs} runs)", cli),
            (f"runs --json ({args.runs} runs)", [*cli, "--json"]),
        ):
            times = timed(argv, args.repeat)
            print(f"{label:<28} median {statistics.median(times) * 1000:7.1f} ms  fastest {min(times) * 1000:7.1f} ms")
        from artlab_kohya.experiments.listing import list_runs, text_table

        start = time.perf_counter()
        listing = list_runs(root)
        middle = time.perf_counter()
        text_table(listing)
        end = time.perf_counter()
        statuses: dict[str, int] = {}
        for row in listing.rows:
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        print(f"in process: read {len(listing.rows)} runs {1000 * (middle - start):.0f} ms, "
              f"table {1000 * (end - middle):.0f} ms; statuses {statuses}")  # fmt: skip
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
