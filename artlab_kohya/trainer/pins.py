"""What artlab-kohya is tested against, declared once: the sd-scripts commit, the trainer's package
versions (pyproject's `trainer` extra pins the same; a test checks), versions known to break, and the
pip names of the modules sd-scripts imports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PINNED_COMMIT = "48d368fa557731ad0488c07304dfeba8c07910eb"
TESTED_VERSIONS: dict[str, str] = {
    "torch": "2.*",
    "accelerate": "1.6.0",
    "transformers": "4.54.1",
    "diffusers": "0.32.1",
    "huggingface-hub": "0.34.3",
    "safetensors": "0.4.5",
    "lycoris-lora": "3.4.0",
}
# Newer versions seen training fine at the pinned commit (shared/kohya: pip_freeze_newstack_working.txt).
SEEN_WORKING: dict[str, tuple[str, ...]] = {
    "accelerate": ("1.15.0",),
    "transformers": ("4.57.6",),
    "diffusers": ("0.39.0",),
    "huggingface-hub": ("0.36.2",),
    "safetensors": ("0.8.0",),
}
# Only the LyCORIS network types need it.
OPTIONAL = frozenset({"lycoris-lora"})


@dataclass(frozen=True)
class KnownBroken:
    package: str
    applies: Callable[[tuple[int, ...]], bool]
    why: str


KNOWN_BROKEN = (
    KnownBroken(
        "lycoris-lora",
        lambda v: v[:1] == (4,),
        "lycoris-lora 4.x FAILS on SD1.x with sd-scripts (AssertionError: duplicated lora name: "
        "lora_unet_time_embedding_linear_1); locon/loha/lokr need lycoris-lora==3.4.0",
    ),
    KnownBroken(
        "transformers",
        lambda v: v >= (5,),
        "transformers 5 fails at import in sd-scripts (cannot import name 'CLIPFeatureExtractor'); "
        "use transformers==4.54.1",
    ),
    KnownBroken(
        "diffusers",
        lambda v: v >= (0, 42),
        "diffusers 0.42 fails at import with huggingface-hub<1 (cannot import name 'resolve_revision'), "
        "and transformers<5 needs huggingface-hub<1; use diffusers==0.32.1",
    ),
)


PIP_NAMES = {
    "cv2": "opencv-python",
    "PIL": "Pillow",
    "yaml": "PyYAML",
    "lycoris": "lycoris-lora",
    "huggingface_hub": "huggingface-hub",
    "google": "protobuf",
    "sklearn": "scikit-learn",
    "open_clip": "open-clip-torch",
    "lion_pytorch": "lion-pytorch",
    "skimage": "scikit-image",
}


# import name -> what to pip install in the trainer's environment, for a diagnosis
INSTALL_HINTS = {
    "bitsandbytes": "bitsandbytes (needed by the 8-bit optimizers such as AdamW8bit)",
    "lycoris": f"lycoris-lora=={TESTED_VERSIONS['lycoris-lora']} (4.x fails on SD1.5 at the pinned sd-scripts)",
    "xformers": "xformers (or set training.attention: sdpa)",
    "cv2": "opencv-python-headless",
    "prodigyopt": "prodigyopt (for optimizer Prodigy)",
    "dadaptation": "dadaptation (for the DAdapt* optimizers)",
    "schedulefree": "schedulefree",
    "lion_pytorch": "lion-pytorch (for optimizer Lion)",
    "tensorboard": "tensorboard (or set output.log_with: none)",
    "wandb": "wandb (or set output.log_with: tensorboard)",
    "imagesize": "imagesize",
    "voluptuous": "voluptuous",
    "toml": "toml",
    "accelerate": f"accelerate=={TESTED_VERSIONS['accelerate']}",
    "transformers": f"transformers=={TESTED_VERSIONS['transformers']}",
    "diffusers": f"diffusers=={TESTED_VERSIONS['diffusers']}",
    "safetensors": "safetensors",
    "einops": "einops",
    "ftfy": "ftfy",
    "torch": "torch (see pytorch.org for the build that matches your CUDA)",
}


def pip_requirement(module: str) -> str:
    """What `pip install` takes for an import name: the hint's requirement, without its explanation."""
    top = module.split(".")[0]
    return INSTALL_HINTS.get(top, PIP_NAMES.get(top, top.replace("_", "-"))).split(" (", 1)[0]
