"""Keep a real run's trainer output as a transcript that the stand-in install replays in CI.

    .venv/bin/python scripts/record_transcript.py RUN_FOLDER NAME --note "what ran, where"

Reads RUN_FOLDER (written by `artlab-kohya run`): stdout.log, stderr.log, spec.lock.yaml and result.json,
and writes tests/data/transcripts/NAME.{stdout,stderr,meta}. Paths are rewritten to the neutral layout
the existing transcripts use, which tests/fake_kohya/train_network.py maps back to a test's own folders:
the run folder and its checkpoints/ become /home/artist/lora/runs/lora, the sd-scripts folder
/home/artist/lora/sd-scripts, the trainer's environment /home/artist/lora/venv, the tokenizer folder
/home/artist/lora/tokenizers, the folder of each model file /home/artist/lora/models and the spec's
folder /home/artist/lora; the run's output name in its checkpoint paths becomes tiny_lora, the name the
stand-in's replay writes checkpoints for. A run folder copied from the machine it ran on is found where it was through
its config.toml's output_dir. The spaces rich pads each log line with up to COLUMNS are trimmed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HOME = "/home/artist/lora"


def ran_in(run: Path) -> Path:
    """Where the run folder was when it ran: its config.toml's output_dir's parent (the folder may have
    been copied since), else where it is."""
    import tomllib

    config = run / "config.toml"
    if config.exists():
        tables = tomllib.loads(config.read_text(encoding="utf-8")).values()
        output_dir = next((t["output_dir"] for t in tables if isinstance(t, dict) and "output_dir" in t), None)
        if output_dir:
            return Path(output_dir).parent
    return run


def replacements(run: Path, lock: dict) -> list[tuple[str, str]]:
    """(real path, neutral path), longest first, so a folder inside another is rewritten as itself."""
    pairs = {str(run / "checkpoints"): f"{HOME}/runs/lora", str(run): f"{HOME}/runs/lora"}
    name = lock["spec"]["output"]["name"]
    pairs[str(run / "checkpoints" / name)] = f"{HOME}/runs/lora/tiny_lora"
    pairs[str(Path(lock["kohya"]["dir"]))] = f"{HOME}/sd-scripts"
    python = Path(lock["kohya"]["python"])
    venv = python.parent.parent if python.parent.name == "bin" else python.parent
    pairs[str(venv)] = f"{HOME}/venv"
    if lock.get("tokenizer_cache_dir"):
        pairs[str(Path(lock["tokenizer_cache_dir"]))] = f"{HOME}/tokenizers"
    for entry in [lock.get("model", {}), *lock.get("components", {}).values()]:
        if isinstance(entry, dict) and entry.get("path"):
            pairs.setdefault(str(Path(entry["path"]).parent), f"{HOME}/models")
    pairs.setdefault(str(Path(lock["spec_file"]).parent), HOME)
    return sorted(pairs.items(), key=lambda pair: -len(pair[0]))


def rewrite(text: str, pairs: list[tuple[str, str]]) -> str:
    for real, neutral in pairs:
        text = text.replace(real, neutral)
    return re.sub(r"[ \t]+(?=\r?\n|\r|$)", "", text)  # rich's padding up to COLUMNS, at each line's end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the run folder")
    parser.add_argument("name", help="the transcript's name under tests/data/transcripts")
    parser.add_argument("--note", required=True, help="what ran: machine, versions, model, data, settings")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "transcripts")
    args = parser.parse_args()
    run = args.run.resolve()
    lock = yaml.safe_load((run / "spec.lock.yaml").read_text(encoding="utf-8"))
    result = json.loads((run / "result.json").read_text(encoding="utf-8"))
    pairs = replacements(ran_in(run), lock)
    for suffix in ("stdout", "stderr"):
        text = (run / f"{suffix}.log").read_text(encoding="utf-8", errors="replace")
        (args.out / f"{args.name}.{suffix}").write_text(rewrite(text, pairs), encoding="utf-8")
    argv = [rewrite(a, pairs) for a in lock["argv"]]
    argv[0] = "python3"
    argv = [Path(a).name if a.endswith(lock["kohya"]["script"]) else a for a in argv]
    meta = {
        "cmd": " ".join(argv),
        "cwd": f"{HOME}/sd-scripts",
        "env": " ".join(f"{k}={v}" for k, v in lock.get("env", {}).items()),
        "rc": result["exit_code"],
        "wall_s": result.get("duration_s"),
        "started": result["started"],
        "note": args.note + " Paths rewritten; the padding of the log lines trimmed.",
    }
    (args.out / f"{args.name}.meta").write_text("".join(f"{k}: {v}\n" for k, v in meta.items()), encoding="utf-8")
    print(f"wrote {args.out / args.name}.{{stdout,stderr,meta}}", file=sys.stderr)


if __name__ == "__main__":
    main()
