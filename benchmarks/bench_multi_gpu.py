"""One training process against two on one host (data parallel), and a sweep side by side on two GPUs.

    python benchmarks/bench_multi_gpu.py --sd-scripts DIR --tokenizers DIR --work /tmp/multi --out OUT \\
        [--cases one two sweep] [--epochs 2] [--timeout 240]

Every case is the whole CLI on the same random-initialised SD1.5 (built with sd-scripts' own code) and
bench_gpu.py's data: 64 images x 10 repeats at 512 px, batch 8 per process, LoRA dim 32, bf16, SDPA,
latents cached in memory, --epochs epochs:
- one: `artlab-kohya run` with launch.num_processes 1 on GPU 0;
- two: the same spec with launch.num_processes 2 on GPUs 0 and 1 (effective batch 16, so half the steps);
- sweep: `artlab-kohya sweep --gpus 0,1` of a two-run matrix (network.dim 16 and 32), the runs side by
  side, one per GPU.
Measured per run: steady images/s (steps/s over the second half of the steps, from events.jsonl, times
the batch and the number of processes), wall time, the trainer's "total optimization steps" against
plan's, the final average loss, the LoRA files written. Writes OUT/results.json and OUT/CASE.tgz.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

BATCH = 8


def spec_text(model: Path, images: Path, sd: Path, name: str, epochs: int, processes: int, matrix: bool) -> str:
    import yaml
    from bench_sdxl import bench_spec

    text = bench_spec(
        {"source": str(model), "family": "sd15"},
        images,
        sd,
        name,
        dataset={"resolution": 512, "batch_size": BATCH, "buckets": {"enabled": False}},
        network={"dim": 32, "alpha": 16},
        training={"epochs": epochs, "save_every_n_epochs": 1},
    )
    spec = yaml.safe_load(text)
    spec["launch"] = {"num_processes": processes, "gpu_ids": list(range(processes))}
    if matrix:
        spec["launch"] = {"num_processes": 1}
        spec["matrix"] = {"network.dim": [16, 32]}
    return yaml.safe_dump(spec, sort_keys=False)


def read_run(folder: Path, processes: int) -> dict:
    """What one run folder says: status, steps against plan, steady images/s, final loss, files."""
    import yaml
    from bench_sdxl import steady

    result = json.loads((folder / "result.json").read_text())
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines() if line.strip()]
    steps = [e for e in events if e.get("type") == "Step"]
    summary = next((e for e in events if e.get("type") == "TrainingSummary"), {})
    lock = yaml.safe_load((folder / "spec.lock.yaml").read_text())
    planned = lock["plan"]["total_steps"]
    rate = steady([(e["t"], e["step"]) for e in steps], planned)
    return {
        "folder": f"{folder.parent.name}/{folder.name}",
        "status": result.get("status"),
        "diagnosis": result.get("diagnosis"),
        "plan_total_steps": planned,
        "trainer_total_steps": summary.get("total_steps"),
        "steps_seen": steps[-1]["step"] if steps else 0,
        "steady_it_s": round(rate, 3) if rate else None,
        "steady_images_s": round(rate * BATCH * processes, 2) if rate else None,
        "first_step_s": steps[0]["t"] if steps else None,
        "duration_s": result.get("duration_s"),
        "startup": result.get("startup"),
        "final_loss": steps[-1].get("loss") if steps else None,
        "gpu_ids": lock["spec"]["launch"].get("gpu_ids"),
        "num_processes": lock["spec"]["launch"].get("num_processes"),
        "checkpoints": [
            (Path(c["file"]).name, c.get("epoch"), c.get("avr_loss")) for c in result.get("checkpoints", [])
        ],
    }


def run_case(
    case: str, model: Path, images: Path, sd: Path, tokenizers: Path, work: Path, out: Path, args: argparse.Namespace
) -> dict:
    from bench_sdxl import cli_env

    processes = 2 if case == "two" else 1
    spec = work / f"spec-{case}.yaml"
    spec.write_text(spec_text(model, images, sd, case, args.epochs, processes, case == "sweep"))
    runs = work / "runs"
    command = "sweep" if case == "sweep" else "run"
    argv = [sys.executable, "-m", "artlab_kohya", command, str(spec), "--plain", "--runs-dir", str(runs)]
    if case == "sweep":
        argv += ["--gpus", "0,1"]
    env = cli_env(tokenizers, work)
    display = work / f"display-{case}.log"
    started = time.time()
    with display.open("wb") as log:
        try:
            rc: int | str = subprocess.run(argv, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT,
                                           timeout=args.timeout).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            rc = "timeout"
    result: dict = {"case": case, "rc": rc, "wall_s": round(time.time() - started, 1), "processes": processes}
    text = display.read_text(errors="replace")
    result["display_tail"] = text[-1500:]
    folders = [p for p in sorted((runs / case).glob("*")) if (p / "result.json").exists()] if case != "sweep" else [
        p for p in sorted(runs.glob("sweep-dim*/*")) if (p / "result.json").exists()
    ]  # fmt: skip
    result["runs"] = [read_run(p, processes) for p in folders]
    with tarfile.open(out / f"{case}.tgz", "w:gz") as tar:
        tar.add(display, arcname=f"{case}/display.log")
        for folder in folders:
            for name in ("stdout.log", "stderr.log", "events.jsonl", "result.json", "spec.lock.yaml", "config.toml"):
                if (folder / name).exists():
                    tar.add(folder / name, arcname=f"{case}/{folder.parent.name}/{folder.name}/{name}")
    return result


def main() -> None:
    import bench_gpu
    from bench_sdxl import run_and_report

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sd-scripts", type=Path, required=True)
    parser.add_argument("--tokenizers", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/artlab-multi"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", default=["one", "two", "sweep"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=240, help="seconds per case")
    args = parser.parse_args()
    sd, tokenizers, work = args.sd_scripts.resolve(), args.tokenizers.resolve(), args.work.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    model, images = bench_gpu.setup(work, sd)
    report: dict = {"python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d"), "cases": []}
    report["setup_s"] = round(time.monotonic() - t, 1)
    print(f"setup: {report['setup_s']} s", flush=True)
    for case in args.cases:
        run_and_report(case, lambda c: run_case(c, model, images, sd, tokenizers, work, args.out, args), report,
                       args.out)  # fmt: skip
        for run in report["cases"][-1].get("runs", []):
            print(f"  {run}", flush=True)


if __name__ == "__main__":
    main()
