"""Fake sd-scripts train_network.py for tests (see README.md beside it)."""

import argparse
import json
import os
import re
import struct
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
SURFACE = TESTS.parent / "artlab_kohya" / "trainer" / "data" / "surface-48d368fa.json"
TYPES = {"int": int, "float": float, "str": str, "Path": Path}


def setup_parser(script: str = "train_network.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    options = json.loads(SURFACE.read_text())["scripts"][script]
    for dest, o in options.items():
        if o["type"] == "flag":
            parser.add_argument(f"--{dest}", action="store_true")
        else:
            kwargs = {"type": TYPES.get(o["type"], str), "default": o["default"]}
            if o["nargs"]:
                kwargs["nargs"] = o["nargs"]
            if o["choices"]:
                kwargs["choices"] = o["choices"]
            parser.add_argument(f"--{dest}", **kwargs)
    return parser


def main(parser: argparse.ArgumentParser | None = None) -> None:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    sys.path.insert(0, str(TESTS))
    from replay import load

    args = (parser or setup_parser()).parse_args()
    config = {k: v for table in tomllib.loads(Path(args.config_file).read_text()).values() for k, v in table.items()}
    out, name = Path(config["output_dir"]), config.get("output_name", "last")
    source = TESTS / "data" / "transcripts" / os.environ.get("FAKE_TRANSCRIPT", "lora")
    duration = float(os.environ.get("FAKE_DURATION", "0.6"))
    transcript = Path(tempfile.mkdtemp(prefix="fake-kohya-")) / source.name  # paths rewritten to this run's
    out.mkdir(parents=True, exist_ok=True)
    for suffix in (".stdout", ".stderr", ".meta"):
        data = source.with_suffix(suffix).read_bytes()
        transcript.with_suffix(suffix).write_bytes(
            data.replace(b"/home/artist/lora/runs/lora/tiny_lora", str(out / name).encode())
        )
    pieces, rc = load(transcript, duration, seed=0)
    start = time.monotonic()
    pending = {1: b"", 2: b""}
    for at, fd, data in pieces:
        time.sleep(max(0.0, at - (time.monotonic() - start)))
        os.write(fd, data)
        pending[fd] += data
        for match in re.finditer(rb"saving checkpoint: (\S+)\n", pending[fd]):
            path = Path(match.group(1).decode())
            if path.suffix == ".safetensors" and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(safetensors(path.name, int(os.environ.get("FAKE_CHECKPOINT_BYTES", "4"))))
        pending[fd] = pending[fd][-4000:]
    if "SAVE_FINAL" in os.environ:
        (out / f"{name}.safetensors").write_bytes(safetensors("final"))
    time.sleep(float(os.environ.get("FAKE_HOLD", "0")))
    sys.exit(rc if rc >= 0 else 1)


def safetensors(title: str, size: int = 4) -> bytes:
    """A well-formed .safetensors file (one float32 tensor of `size` bytes) with sd-scripts-like metadata."""
    header = json.dumps(
        {
            "__metadata__": {"ss_output_name": title, "ss_network_module": "networks.lora"},
            "lora_unet_fake.alpha": {"dtype": "F32", "shape": [size // 4], "data_offsets": [0, size // 4 * 4]},
        }
    ).encode()
    return struct.pack("<Q", len(header)) + header + b"\0\0\x80?" * (size // 4)


if __name__ == "__main__":
    main()
