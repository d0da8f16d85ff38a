"""What the stand-in LoRA tools share: the real script's argument surface, a replayed transcript, an output."""

import argparse
import json
import os
import struct
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent.parent
TYPES = {"int": int, "float": float, "str": str}


def parse(script: str) -> argparse.Namespace:
    """argv parsed with the argument surface sd-scripts' own script has at the pinned commit."""
    dump = json.loads((TESTS / "data" / "tool_args" / f"{script}.json").read_text())
    parser = argparse.ArgumentParser(prog=f"{script}.py")
    for o in dump["options"]:
        if o["dest"] == "help":
            continue
        if o["action"] == "_StoreTrueAction":
            parser.add_argument(*o["option_strings"], action="store_true")
            continue
        kwargs = {"type": TYPES.get(o["type"], str), "default": o["default"]}
        if o["nargs"]:
            kwargs["nargs"] = o["nargs"]
        if o["choices"]:
            kwargs["choices"] = o["choices"]
        parser.add_argument(*o["option_strings"], **kwargs)
    return parser.parse_args()


def replay(name: str, rewrite: dict[str, str]) -> int:
    """Write tests/data/transcripts/NAME's output (its paths rewritten to this run's) as a real child would."""
    sys.path.insert(0, str(TESTS))
    from replay import load

    name = os.environ.get("FAKE_TRANSCRIPT", name)
    # lora_tools/: recorded for these stand-ins; transcripts/: the training parser's, resize_lora's among them
    source = next(
        d / name
        for d in (TESTS / "data" / "lora_tools", TESTS / "data" / "transcripts")
        if (d / f"{name}.meta").exists()
    )
    work = Path(tempfile.mkdtemp(prefix="fake-tool-")) / source.name
    for suffix in (".stdout", ".stderr", ".meta"):
        data = source.with_suffix(suffix).read_bytes()
        for old, new in rewrite.items():
            data = data.replace(old.encode(), new.encode())
        work.with_suffix(suffix).write_bytes(data)
    pieces, rc = load(work, float(os.environ.get("FAKE_DURATION", "0.2")), seed=0)
    for _, fd, data in pieces:
        os.write(fd, data)
    return rc


def header(path: str) -> dict:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def write(path: str, tensors: dict, metadata: dict) -> None:
    """A well-formed .safetensors file with these tensor shapes (zeros) and metadata."""
    entries, offset = {}, 0
    for key, (dtype, shape) in tensors.items():
        size = 2 if dtype in ("F16", "BF16") else 4
        for s in shape:
            size *= s
        entries[key] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    entries["__metadata__"] = metadata
    raw = json.dumps(entries).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
