"""Report the trainer environment: Python, torch and CUDA, GPUs, the packages sd-scripts needs, and
which optional modules import.

Run by the trainer's Python, not ours (artlab-kohya never imports torch): standard library only,
plus torch itself and the modules asked about, which is the point. The sd-scripts folder goes first
on the path, as it is when the trainer runs from it.

    python probe_versions.py [SD_SCRIPTS_DIR] OUT_JSON
"""

import json
import platform
import sys
from importlib import import_module, metadata

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
# What a spec may need beyond torch: import name -> what to import to know it works. Imported, not only
# looked up: a bitsandbytes or xformers built for another torch or CUDA is installed but fails here.
MODULES = {
    "accelerate": "accelerate",
    "bitsandbytes": "bitsandbytes",
    "lycoris": "lycoris.kohya",
    "prodigyopt": "prodigyopt",
    "dadaptation": "dadaptation",
    "schedulefree": "schedulefree",
    "lion_pytorch": "lion_pytorch",
    "xformers": "xformers.ops",
    "tensorboard": "tensorboard",
    "tensorboardX": "tensorboardX",
    "wandb": "wandb",
}


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


def write(result, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True)


def main():
    out = sys.argv[-1]
    if len(sys.argv) > 2:
        sys.path.insert(0, sys.argv[1])
    result = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "packages": {name: version(name) for name in PACKAGES},
        "torch": torch_info(),
        "modules": {},
    }
    for name, target in MODULES.items():
        # written before each import: should one crash the interpreter, the answer still says which
        result["modules"][name] = "the probe died importing it"
        write(result, out)
        try:
            import_module(target)
            result["modules"][name] = None
        except BaseException as exc:  # noqa: BLE001 - any failure means the trainer would fail too
            result["modules"][name] = f"{type(exc).__name__}: {exc}"
    write(result, out)


if __name__ == "__main__":
    main()
