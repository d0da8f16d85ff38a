"""Fake sd-scripts train_network.py for tests (see README.md beside it)."""

import argparse
import json
import os
import re
import sys
import tempfile
import time
import zlib
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


def safetensors(metadata: dict[str, str], tensor: bytes) -> bytes:
    """A valid .safetensors file: one small tensor and sd-scripts-like `__metadata__`."""
    header = {
        "__metadata__": metadata,
        "lora_unet_fake.lora_down.weight": {"dtype": "U8", "shape": [len(tensor)], "data_offsets": [0, len(tensor)]},
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + tensor


def png(color: tuple[int, int, int], size: int = 8) -> bytes:
    """A small solid RGB PNG (what sd-scripts' sampler would write, minus the picture)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    row = b"\x00" + bytes(color) * size
    ihdr = size.to_bytes(4, "big") + size.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * size)) + chunk(b"IEND", b"")


def save(path: Path, config: dict, epoch: int) -> None:
    """A checkpoint as sd-scripts names it, with ss_* metadata from the config; samples of the epoch
    in output_dir/sample/ as sd-scripts names them, when sampling is on for it."""
    name = config.get("output_name", "last")
    metadata = {
        "ss_output_name": name,
        "ss_network_dim": str(config.get("network_dim")),
        "ss_network_alpha": str(config.get("network_alpha")),
        "ss_learning_rate": str(config.get("learning_rate")),
        "ss_unet_lr": str(config.get("unet_lr")),
        "ss_epoch": str(epoch),
        "ss_seed": str(config.get("seed")),
        "sshs_model_hash": "fake",
    }
    size = int(os.environ.get("FAKE_CHECKPOINT_BYTES", "0"))  # a large file fills a small disk
    path.write_bytes(safetensors(metadata, path.name.encode().ljust(size, b"\0")))
    every = config.get("sample_every_n_epochs")
    prompts = config.get("sample_prompts")
    if every and prompts and epoch % every == 0:
        lines = [x.strip() for x in Path(prompts).read_text().splitlines() if x.strip() and not x.startswith("#")]
        folder = Path(config["output_dir"]) / "sample"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d%H%M%S")
        for i in range(len(lines)):
            color = (40 * epoch % 256, 60 + 50 * i % 196, 90)
            (folder / f"{name}_e{epoch:06d}_{i:02d}_{stamp}.png").write_bytes(png(color))


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
    chosen = json.loads(os.environ.get("FAKE_TRANSCRIPT_FOR", "{}"))  # {part of output_name: transcript}
    transcript_name = next((t for key, t in chosen.items() if key in name), os.environ.get("FAKE_TRANSCRIPT", "lora"))
    source = TESTS / "data" / "transcripts" / transcript_name
    durations = json.loads(os.environ.get("FAKE_DURATION_FOR", "{}"))  # {part of output_name: seconds}
    duration = next(
        (float(d) for key, d in durations.items() if key in name), float(os.environ.get("FAKE_DURATION", "0.6"))
    )
    transcript = Path(tempfile.mkdtemp(prefix="fake-kohya-")) / source.name  # paths rewritten to this run's
    out.mkdir(parents=True, exist_ok=True)
    scales = json.loads(os.environ.get("FAKE_LOSS_SCALE", "{}"))  # {part of output_name: factor}
    scale = next((float(f) for key, f in scales.items() if key in name), None)
    main_process = os.environ.get("RANK", "0") == "0"  # sd-scripts saves (and says so) on the main process only
    for suffix in (".stdout", ".stderr", ".meta"):
        data = source.with_suffix(suffix).read_bytes()
        if not main_process:
            data = re.sub(rb"[^\n]*(saving checkpoint: |model saved\.)[^\n]*\n", b"", data)
        data = data.replace(b"/home/artist/lora/runs/lora/tiny_lora", str(out / name).encode())
        if scale is not None:
            data = re.sub(rb"avr_loss=([0-9.]+)", lambda m: b"avr_loss=%.4g" % (float(m.group(1)) * scale), data)
        transcript.with_suffix(suffix).write_bytes(data)
    pieces, rc = load(transcript, duration, seed=0)
    start = time.monotonic()
    pending = {1: b"", 2: b""}
    epoch = 1
    for at, fd, data in pieces:
        time.sleep(max(0.0, at - (time.monotonic() - start)))
        os.write(fd, data)
        pending[fd] += data
        for seen in re.finditer(rb"epoch (\d+)/\d+", data):
            epoch = int(seen.group(1))
        for match in re.finditer(rb"saving checkpoint: (\S+)\n", pending[fd]):
            path = Path(match.group(1).decode())
            if path.suffix == ".safetensors" and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                numbered = re.search(r"-(\d{6})$", path.stem)
                save(path, config, int(numbered.group(1)) if numbered else epoch)
        pending[fd] = pending[fd][-4000:]
    if "SAVE_FINAL" in os.environ and main_process:
        save(out / f"{name}.safetensors", config, epoch)
    time.sleep(float(os.environ.get("FAKE_HOLD", "0")))
    until = os.environ.get("FAKE_HOLD_UNTIL")  # a file: hold until it exists (a test's signal), 10 min at most
    deadline = time.monotonic() + 600
    while until and not Path(until).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    sys.exit(rc if rc >= 0 else 1)


if __name__ == "__main__":
    main()
