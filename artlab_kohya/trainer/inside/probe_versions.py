"""Report the trainer environment: Python, torch and CUDA, GPUs, and the packages sd-scripts needs.

Run by the trainer's Python, not ours (artlab-kohya never imports torch): standard library only,
plus torch itself, which is the point.

    python probe_versions.py OUT_JSON
"""

import json
import platform
import sys
from importlib import metadata

PACKAGES = (
    "torch",
    "torchvision",
    "accelerate",
    "transformers",
    "diffusers",
    "huggingface-hub",
    "safetensors",
    "tokenizers",
    "lycoris-lora",
    "bitsandbytes",
    "xformers",
    "numpy",
)


def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def torch_info():
    try:
        import torch
    except BaseException as exc:  # noqa: BLE001 - a broken torch is what we are here to report
        return {"error": f"{type(exc).__name__}: {exc}"}
    info = {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": False,
        "gpus": [],
        "bf16": False,
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }
    try:
        info["cuda_available"] = torch.cuda.is_available()
        if info["cuda_available"]:
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                info["gpus"].append(
                    {
                        "name": props.name,
                        "memory_bytes": props.total_memory,
                        "capability": f"{props.major}.{props.minor}",
                    }
                )
            info["bf16"] = bool(torch.cuda.is_bf16_supported())
    except BaseException as exc:  # noqa: BLE001
        info["cuda_error"] = f"{type(exc).__name__}: {exc}"
    return info


def main():
    result = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "packages": {name: version(name) for name in PACKAGES},
        "torch": torch_info(),
    }
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
