"""The spec's schema: what a user may write in spec.yaml, with defaults and descriptions.

Each `description` is the single source for `artlab-kohya explain`, the JSON Schema and the
README's reference table. Cross-section rules (for example cached latents against colour
augmentation) live in `rules.py`, where they can name the field they judge.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationInfo,
)

from .blocks import BLOCK_NAMES, LR_CURVES, is_lr_curve
from .families import ALIAS_NAMES, ALIASES, AliasName, SpecFamily

# Names sd-scripts' get_optimizer() knows at the pinned commit (library/train_util.py).
OPTIMIZERS = (
    "AdamW",
    "AdamW8bit",
    "PagedAdamW",
    "PagedAdamW8bit",
    "PagedAdamW32bit",
    "Lion",
    "Lion8bit",
    "PagedLion8bit",
    "SGDNesterov",
    "SGDNesterov8bit",
    "AdEMAMix8bit",
    "PagedAdEMAMix8bit",
    "DAdaptation",
    "DAdaptAdamPreprint",
    "DAdaptAdaGrad",
    "DAdaptAdam",
    "DAdaptAdan",
    "DAdaptAdanIP",
    "DAdaptLion",
    "DAdaptSGD",
    "Prodigy",
    "Adafactor",
    "RAdamScheduleFree",
    "AdamWScheduleFree",
    "SGDScheduleFree",
)

# Upper bounds far above any real run, so that a typo (or a hostile spec) cannot make `plan` count,
# list or allocate without end. The dataset tools take their size limit from here too.
MAX_SIDE = 8192  # pixels: resolution, bucket sides, `dataset prepare --size`
MAX_EPOCHS = 10_000
MAX_STEPS = 1_000_000
MAX_REPEATS = 10_000
MAX_BATCH = 1_024
MAX_RANK = 1_000_000  # LyCORIS LoKr takes a rank above the layers' sizes for full matrices (GUI presets: 100000)
MAX_PROCESSES = 1_024
MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit
MAX_NAME_BYTES = 200  # a file name part is at most 255 bytes; sd-scripts appends up to -step00000001.safetensors


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Relative paths are relative to the spec file, so a spec moves with its dataset."""
    too_long = next((part for part in value.parts if len(part.encode("utf-8")) > 255), None)
    if too_long is not None:  # the OS refuses these with an error, not "does not exist"
        raise ValueError(f"has a file name part longer than 255 bytes ('{too_long[:40]}...')")
    if len(str(value).encode("utf-8")) > 4096:
        raise ValueError("is longer than 4096 bytes")
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return value


SpecPath = Annotated[Path, Strict(False), AfterValidator(_resolve_path)]
Scalar = str | int | float | bool
ArgValue = Scalar | list[Scalar]


_NAME = re.compile(r"[\w.\-]+")


def name_problem(name: str) -> str | None:
    """Why `name` cannot be one part of a file name (output files, run and image folders), or None."""
    if not _NAME.fullmatch(name):
        return "must be one file name: letters, digits, '_', '-' and '.', no '/', spaces or control characters"
    if name in (".", ".."):
        return "must name a file, not the folder '.' or '..'"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"must be at most {MAX_NAME_BYTES} bytes (file names end at 255, and sd-scripts adds suffixes)"
    return None


def _file_name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise ValueError(f"{problem} (got {shown!r})")
    return value


# A spec is copied into every run folder and lock; credentials belong in the environment, where
# wandb and huggingface_hub read them. sd-scripts' own names first, then any key that looks like one.
CREDENTIAL_ENV = {"wandb_api_key": "WANDB_API_KEY", "huggingface_token": "HF_TOKEN"}
_CREDENTIAL = re.compile(
    r"(?:^|[_-])(?:secret|password|passwd|credentials?|api[_-]?key|apikey)(?:$|[_-])|(?:^|[_-])token$", re.IGNORECASE
)


def _not_a_credential(key: str) -> str:
    if key.lower() in CREDENTIAL_ENV:
        env = CREDENTIAL_ENV[key.lower()]
        raise ValueError(
            f"'{key}' is a credential, and a spec is copied into every run's record; "
            f"set the {env} environment variable instead (sd-scripts' libraries read it)"
        )
    if _CREDENTIAL.search(key):
        raise ValueError(
            f"'{key}' looks like a credential, and a spec is copied into every run's record; "
            f"pass it in the environment instead ({', '.join(CREDENTIAL_ENV.values())}, ...)"
        )
    return key


def _optimizer_name(value: str) -> str:
    if value in OPTIMIZERS or "." in value:
        return value
    close = difflib.get_close_matches(value, OPTIMIZERS, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ValueError(
        f"unknown optimizer '{value}'{hint} (sd-scripts knows {', '.join(OPTIMIZERS)}, "
        "or give a full class path such as torch.optim.RMSprop)"
    )


class _Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, validate_default=False, allow_inf_nan=False)


# --------------------------------------------------------------------------- model


SHA256 = r"^[0-9a-f]{64}$"
_SHA256 = "The file's SHA-256 (64 lowercase hex digits); checked before training when given."


class LocalSource(_Section):
    type: Literal["local"] = Field("local", description="a checkpoint file or diffusers folder on this disk")
    path: SpecPath = Field(description="Path to the base model (.safetensors preferred).")
    sha256: str | None = Field(None, pattern=SHA256, description=_SHA256)


class HubSource(_Section):
    type: Literal["hub"] = Field("hub", description="a file in a Hugging Face hub repository")
    repo: str = Field(min_length=1, description="Hub repository id, e.g. stable-diffusion-v1-5/stable-diffusion-v1-5.")
    file: str = Field(min_length=1, description="File in that repository, e.g. v1-5-pruned-emaonly.safetensors.")
    revision: str = Field(
        "main",
        min_length=1,
        description="Branch, tag or commit; the run record always stores the resolved commit hash.",
    )
    sha256: str | None = Field(None, pattern=SHA256, description=_SHA256)


class AliasSource(_Section):
    type: Literal["alias"] = Field("alias", description="a well-known base model by short name")
    name: AliasName = Field(
        description=", ".join(f"{name} ({a.repo}, {a.family})" for name, a in ALIASES.items()) + "."
    )


def _source_shorthand(value: Any) -> Any:
    """`source: sd15` and `source: models/x.safetensors` are shorthands for the tables."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("must not be empty: give a path, sd15/sdxl/sd2, or {type: hub, repo, file}")
        if value in ALIAS_NAMES:
            return {"type": "alias", "name": value}
        return {"type": "local", "path": value}
    return value


class _ShorthandSchema:
    """The JSON Schema of model.source accepts the shorthand text too, as validation does, so that an
    editor does not mark `source: sd15` (every `init` spec) as wrong."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        tables = handler(core_schema)
        text = {
            "type": "string",
            "minLength": 1,
            "description": "A local path (relative to the spec file) or an alias.",
            "examples": list(ALIAS_NAMES),
        }
        return {"anyOf": [text, tables]}


ModelSource = Annotated[
    LocalSource | HubSource | AliasSource,
    Field(discriminator="type"),
    BeforeValidator(_source_shorthand),
    _ShorthandSchema(),
]


def _component_shorthand(value: Any) -> Any:
    """`clip_l: models/clip_l.safetensors` is a shorthand for {type: local, path: ...}; a table without a
    type is local when it has a path and a hub file when it has a repo."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("must not be empty: give a path or {type: hub, repo, file, revision}")
        return {"type": "local", "path": value}
    if isinstance(value, dict) and "type" not in value:
        kind = "local" if "path" in value else "hub" if "repo" in value else None
        return {"type": kind, **value} if kind else value
    return value


class _PathSchema:
    """The JSON Schema of a component accepts the shorthand path text too, as validation does."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        text = {"type": "string", "minLength": 1, "description": "A local path (relative to the spec file)."}
        return {"anyOf": [text, handler(core_schema)]}


ComponentSource = Annotated[
    LocalSource | HubSource,
    Field(discriminator="type"),
    BeforeValidator(_component_shorthand),
    _PathSchema(),
]
_COMPONENT = (
    "FLUX.1/SD3: {what}, a local path or {{type: hub, repo, file, revision, sha256}}; a flux1/sd3 alias brings its own."
)


class ModelSpec(_Section):
    source: ModelSource = Field(
        description="Base model: a local path, `sd15`/`sdxl`/`sd2`, or {type: hub, repo, file, revision}."
    )
    family: SpecFamily = Field(
        "auto",
        description="Architecture: sd15, sd2, sd2-v (v-prediction), sdxl, sdxl-v (v-prediction), flux1 (FLUX.1 "
        "dev/schnell), sd3 (SD3 medium, SD3.5 medium/large), or auto (read from the file header).",
    )
    clip_skip: int | None = Field(
        None,
        ge=1,
        le=12,
        description="Text-encoder layers to skip: 2 for anime models, 1 (or unset) for realistic ones.",
    )
    v_parameterization: bool = Field(
        False,
        description="Train with v-prediction (SD2 768-v, v-pred SDXL); implied by family sd2-v/sdxl-v and by a "
        "file whose metadata says modelspec.prediction_type v.",
    )
    vae: SpecPath | None = Field(None, description="A separate VAE file to use instead of the model's own.")
    no_half_vae: bool = Field(
        False,
        description="Keep the VAE in float32 under mixed precision (SDXL's VAE overflows to NaN in fp16; the GUI's "
        "sdxl_no_half_vae).",
    )
    allow_pickle: bool = Field(
        False,
        description="Allow a pickled .ckpt/.pt base model. Pickles can run code when loaded; prefer .safetensors.",
    )
    ae: ComponentSource | None = Field(None, description=_COMPONENT.format(what="the FLUX.1 autoencoder (ae)"))
    clip_l: ComponentSource | None = Field(None, description=_COMPONENT.format(what="the CLIP-L text encoder"))
    clip_g: ComponentSource | None = Field(None, description=_COMPONENT.format(what="SD3's CLIP-G text encoder"))
    t5xxl: ComponentSource | None = Field(None, description=_COMPONENT.format(what="the T5-XXL text encoder"))
    fp8_base: bool = Field(
        False,
        description="Keep the base model in fp8 (about half the VRAM): FLUX.1/SD3's transformer, or the SD U-Net "
        "(sd-scripts' fp8_base).",
    )


# --------------------------------------------------------------------------- dataset


class BucketSpec(_Section):
    enabled: bool = Field(True, description="Aspect-ratio bucketing: train images at their own aspect ratio.")
    min_resolution: int = Field(256, ge=64, le=MAX_SIDE, description="Smallest bucket side in pixels.")
    max_resolution: int = Field(1024, ge=64, le=MAX_SIDE, description="Largest bucket side in pixels.")
    step: int = Field(
        64,
        ge=1,
        le=MAX_SIDE,
        description="Bucket sides are multiples of this: of 64 for SD1.x/SD2.x, of 32 for SDXL (sd-scripts "
        "asserts it).",
    )
    no_upscale: bool = Field(False, description="Never upscale an image to fit a bucket.")


# ASCII spelled out: JSON Schema's \w (an editor's) is ASCII, Python's is not, and the two must agree.
CAPTION_EXTENSION = r"^\.[A-Za-z0-9_-]+$"
Repeats = Annotated[int, Field(ge=1, le=MAX_REPEATS)] | Literal["folder", "auto"]
Side = Annotated[int, Field(ge=64, le=MAX_SIDE)]


class SubsetSpec(_Section):
    path: SpecPath = Field(description="Folder of images with same-name caption files (kohya's `N_name` layout).")
    repeats: Repeats = Field(
        "folder",
        description="Times each image is seen per epoch: a number, `folder` (the N of an `N_name` folder) "
        "or `auto` (derived from dataset.target_steps).",
    )
    class_tokens: str | None = Field(
        None, description="Trigger/class words; the caption of images that have no caption file."
    )
    caption_extension: str | None = Field(
        None, pattern=CAPTION_EXTENSION, description="Caption file extension for this subset (default: dataset's)."
    )
    regularization: bool = Field(False, description="A regularization (class) image set, not training images.")
    shuffle_caption: bool = Field(False, description="Shuffle comma-separated caption tags each step.")
    keep_tokens: int = Field(0, ge=0, le=MAX_BATCH, description="Leading caption tags kept in place when shuffling.")
    flip_aug: bool = Field(False, description="Random horizontal flips (not for asymmetric subjects).")
    color_aug: bool = Field(False, description="Random hue shifts; needs training.cache_latents: off.")
    random_crop: bool = Field(False, description="Random crops instead of centre crops; needs cache_latents: off.")
    caption_dropout_rate: float = Field(0.0, ge=0, le=1, description="Probability of dropping the whole caption.")
    caption_tag_dropout_rate: float = Field(0.0, ge=0, le=1, description="Probability of dropping each tag.")
    caption_dropout_every_n_epochs: int = Field(
        0, ge=0, le=MAX_EPOCHS, description="Drop every caption in every Nth epoch (0: never)."
    )
    keep_tokens_separator: str | None = Field(
        None,
        min_length=1,
        description="Captions are kept in place up to this separator when shuffling (instead of keep_tokens), "
        "e.g. '|||'.",
    )
    secondary_separator: str | None = Field(
        None,
        min_length=1,
        description="Tags joined by this separator shuffle and drop out as one tag (the joint becomes a comma), "
        "e.g. ';;;'.",
    )
    caption_prefix: str | None = Field(None, description="Text put before every caption.")
    caption_suffix: str | None = Field(None, description="Text put after every caption.")


class DatasetSpec(_Section):
    resolution: Side | Annotated[list[Side], Field(min_length=2, max_length=2)] = Field(
        512, description="Training resolution: one side (square) or [width, height]. 512-768 for SD1.5."
    )
    batch_size: int = Field(
        1, ge=1, le=MAX_BATCH, description="Images per step per GPU; by VRAM (the guide: 512 px, 12 GB -> 6)."
    )
    buckets: BucketSpec = Field(default_factory=BucketSpec, description="Aspect-ratio bucketing.")
    caption_extension: str = Field(".txt", pattern=CAPTION_EXTENSION, description="Extension of caption files.")
    target_steps: int = Field(
        1500,
        ge=1,
        le=MAX_STEPS,
        description="Total optimization steps that `repeats: auto` aims for (the guide: above ~1500).",
    )
    subsets: list[SubsetSpec] = Field(min_length=1, description="One entry per image folder.")


# --------------------------------------------------------------------------- network


def _block_name(value: str) -> str:
    if value in BLOCK_NAMES:
        return value
    close = difflib.get_close_matches(value.upper(), BLOCK_NAMES, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ValueError(f"must be a list or one of {', '.join(BLOCK_NAMES)} (got {value!r}){hint}")


def _lr_weights(value: str) -> str:
    if value in BLOCK_NAMES or is_lr_curve(value):
        return value
    raise ValueError(
        f"must be a list, one of {', '.join(BLOCK_NAMES)}, or one of sd-scripts' {', '.join(LR_CURVES)} "
        f"(with an optional +base) (got {value!r})"
    )


BlockDims = list[Annotated[int, Field(ge=0, le=MAX_RANK)]] | Annotated[str, AfterValidator(_block_name)]
BlockValues = list[Annotated[float, Field(ge=0)]] | Annotated[str, AfterValidator(_block_name)]
LrWeights = list[Annotated[float, Field(ge=0)]] | Annotated[str, AfterValidator(_lr_weights)]

_DIM = "Rank of the low-rank matrices (network_dim)."
_ALPHA = "Scales the learned weights by alpha/dim; keep it at or below dim."
_CONV_DIM = "Rank for 3x3 convolution layers too; unset: none for lora/dylora, dim for LyCORIS types."
_CONV_ALPHA = "Alpha for the convolution layers; unset: alpha for LyCORIS types."
_TRAIN = "What to train: both, unet (network_train_unet_only) or text_encoder."
_WEIGHTS = "A LoRA file to continue training from (network_weights)."
_DROPOUT = "Neuron dropout on the network's outputs (network_dropout)."
_RANK_DROPOUT = "Dropout of whole ranks."
_MODULE_DROPOUT = "Dropout of whole modules."
_ARGS = "Further network_args passed to the network module as key=value strings."


class _NetworkCommon(_Section):
    train: Literal["both", "unet", "text_encoder"] = Field("both", description=_TRAIN)
    weights: SpecPath | None = Field(None, description=_WEIGHTS)
    dim_from_weights: bool = Field(
        False, description="Take the ranks and alphas from network.weights' file instead of dim and alpha."
    )
    dropout: float | None = Field(None, ge=0, lt=1, description=_DROPOUT)
    scale_weight_norms: float | None = Field(
        None,
        gt=0,
        description="Max-norm regularization: scale down module weights whose norm passes this (1.0 is common; "
        "sd-scripts' scale_weight_norms).",
    )
    args: dict[str, Scalar] = Field(default_factory=dict, description=_ARGS)


class LoraNetwork(_NetworkCommon):
    type: Literal["lora"] = Field(description="standard LoRA, sd-scripts networks.lora (the guide: dim 128, alpha 64)")
    dim: int = Field(128, ge=1, le=MAX_RANK, description=_DIM)
    alpha: float = Field(64, gt=0, description=_ALPHA)
    conv_dim: int | None = Field(None, ge=1, le=MAX_RANK, description=_CONV_DIM)
    conv_alpha: float | None = Field(None, gt=0, description=_CONV_ALPHA)
    rank_dropout: float | None = Field(None, ge=0, lt=1, description=_RANK_DROPOUT)
    module_dropout: float | None = Field(None, ge=0, lt=1, description=_MODULE_DROPOUT)
    block_dims: BlockDims | None = Field(
        None,
        description="Per-block ranks: 25 values for SD1.x/SD2.x (IN00-IN11, MID, OUT00-OUT11), 23 for SDXL, or a "
        "named vector (NOT, ALL, INS, IND, INALL, MIDD, OUTD, OUTS, OUTALL, NOFACE) of network.dim.",
    )
    block_alphas: BlockValues | None = Field(
        None, description="Per-block alphas, as block_dims (a named vector is of network.alpha)."
    )
    conv_block_dims: BlockDims | None = Field(
        None, description="Per-block ranks of the 3x3 convolutions, as block_dims (a named vector is of conv_dim)."
    )
    conv_block_alphas: BlockValues | None = Field(
        None, description="Per-block alphas of the 3x3 convolutions (a named vector is of conv_alpha)."
    )
    down_lr_weight: LrWeights | None = Field(
        None,
        description="Learning-rate weights of the down blocks: 12 values (SDXL: 9), the IN part of a named vector, "
        "or sd-scripts' cosine, sine, linear, reverse_linear, zeros (+base).",
    )
    mid_lr_weight: Annotated[float, Field(ge=0)] | list[Annotated[float, Field(ge=0)]] | None = Field(
        None, description="Learning-rate weight of the mid block (SDXL: 3 values)."
    )
    up_lr_weight: LrWeights | None = Field(
        None, description="Learning-rate weights of the up blocks, as down_lr_weight (the OUT part of a name)."
    )


class DyLoraNetwork(_NetworkCommon):
    type: Literal["dylora"] = Field(description="DyLoRA, trains every rank up to dim at once (networks.dylora)")
    dim: int = Field(16, ge=1, le=MAX_RANK, description=_DIM)
    alpha: float = Field(8, gt=0, description=_ALPHA)
    unit: int = Field(4, ge=1, le=MAX_RANK, description="DyLoRA rank step; dim must be a multiple of it.")
    conv_dim: int | None = Field(None, ge=1, le=MAX_RANK, description=_CONV_DIM)
    conv_alpha: float | None = Field(None, gt=0, description=_CONV_ALPHA)


class _LycorisNetwork(_NetworkCommon):
    conv_dim: int | None = Field(None, ge=1, le=MAX_RANK, description=_CONV_DIM)
    conv_alpha: float | None = Field(None, gt=0, description=_CONV_ALPHA)
    rank_dropout: float | None = Field(None, ge=0, lt=1, description=_RANK_DROPOUT)
    module_dropout: float | None = Field(None, ge=0, lt=1, description=_MODULE_DROPOUT)
    use_tucker: bool = Field(False, description="Tucker decomposition for convolution layers.")
    preset: str | None = Field(None, description="LyCORIS preset (full, attn-mlp, attn-only, unet-only, ...).")
    train_norm: bool = Field(False, description="Also train the normalization layers (LyCORIS 'train_norm').")


class _LowRankLycoris(_LycorisNetwork):
    """LoCon, LoHa and LoKr: the LyCORIS switches the GUI offers for them."""

    dora_wd: bool = Field(False, description="DoRA: decompose the weights into magnitude and direction.")
    bypass_mode: bool = Field(
        False, description="Apply the network beside the layer instead of merging it in (for quantized bases)."
    )
    use_scalar: bool = Field(False, description="Learn a scale for each module too, starting at 0.")


class LoconNetwork(_LowRankLycoris):
    type: Literal["locon"] = Field(
        description="LyCORIS LoCon, LoRA for linear and conv layers (the guide: dim 64 at most, alpha 1)"
    )
    dim: int = Field(32, ge=1, le=MAX_RANK, description=_DIM)
    alpha: float = Field(1, gt=0, description=_ALPHA)


class LohaNetwork(_LowRankLycoris):
    type: Literal["loha"] = Field(
        description="LyCORIS LoHa, Hadamard-product low rank (the guide: dim 32 at most, alpha 1)"
    )
    dim: int = Field(16, ge=1, le=MAX_RANK, description=_DIM)
    alpha: float = Field(1, gt=0, description=_ALPHA)


class LokrNetwork(_LowRankLycoris):
    type: Literal["lokr"] = Field(description="LyCORIS LoKr, Kronecker-product low rank")
    dim: int = Field(16, ge=1, le=MAX_RANK, description=_DIM)
    alpha: float = Field(1, gt=0, description=_ALPHA)
    factor: int = Field(-1, description="LoKr Kronecker factor; -1 picks it from the layer shapes.")
    decompose_both: bool = Field(
        False, description="Decompose both Kronecker factors into low rank, not only the larger one."
    )


class Ia3Network(_NetworkCommon):
    type: Literal["ia3"] = Field(description="LyCORIS (IA)^3: learned scales on attention and MLP, no rank")
    dim: int = Field(
        1, ge=1, le=MAX_RANK, description="Passed as network_dim; (IA)^3 has no rank and does not read it."
    )
    alpha: float = Field(1, gt=0, description="Passed as network_alpha; (IA)^3 does not read it.")
    preset: str | None = Field(
        None, description="LyCORIS preset; LyCORIS recommends 'ia3' for (IA)^3 (unset: LyCORIS's 'full')."
    )


class GloraNetwork(_LycorisNetwork):
    type: Literal["glora"] = Field(description="LyCORIS GLoRA, generalized LoRA")
    dim: int = Field(16, ge=1, le=MAX_RANK, description=_DIM)
    alpha: float = Field(1, gt=0, description=_ALPHA)


class _OftNetwork(_LycorisNetwork):
    constraint: float | None = Field(None, gt=0, description="OFT constraint on the rotation (LyCORIS 'constraint').")
    rescaled: bool = Field(False, description="Learn a rescaling of the outputs too (LyCORIS 'rescaled').")


class BoftNetwork(_OftNetwork):
    type: Literal["boft"] = Field(description="LyCORIS BOFT, butterfly orthogonal fine-tuning")
    dim: int = Field(16, ge=1, le=MAX_RANK, description="Block size of the orthogonal blocks (network_dim).")
    alpha: float = Field(1, gt=0, description=_ALPHA)


class DiagOftNetwork(_OftNetwork):
    type: Literal["diag-oft"] = Field(description="LyCORIS diag-OFT, block-diagonal orthogonal fine-tuning")
    dim: int = Field(16, ge=1, le=MAX_RANK, description="Block size of the orthogonal blocks (network_dim).")
    alpha: float = Field(1, gt=0, description=_ALPHA)


NetworkSpec = Annotated[
    LoraNetwork
    | DyLoraNetwork
    | LoconNetwork
    | LohaNetwork
    | LokrNetwork
    | Ia3Network
    | GloraNetwork
    | BoftNetwork
    | DiagOftNetwork,
    Field(discriminator="type"),
]
LYCORIS_ALGOS = ("locon", "loha", "lokr", "ia3", "glora", "boft", "diag-oft")  # network.type = lycoris.kohya's algo


# --------------------------------------------------------------------------- optimizer & scheduler


class OptimizerSpec(_Section):
    type: Annotated[str, AfterValidator(_optimizer_name)] = Field(
        "AdamW",
        description="AdamW, AdamW8bit, Lion, Prodigy, DAdaptation..., Adafactor, SGDNesterov, ... "
        "or a full class path.",
        json_schema_extra={"examples": list(OPTIMIZERS)},
    )
    learning_rate: float = Field(1e-4, gt=0, description="Base learning rate; 1.0 for DAdaptation and Prodigy.")
    unet_lr: float | None = Field(None, gt=0, description="U-Net learning rate (the guide: 1e-4).")
    text_encoder_lr: float | None = Field(
        None, gt=0, description="Text-encoder learning rate (the guide: 5e-5, below the U-Net's)."
    )
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm; 0 turns clipping off.")
    args: dict[str, ArgValue] = Field(
        default_factory=dict,
        description="Optimizer keyword arguments, e.g. {weight_decay: 0.01, betas: [0.9, 0.99]}.",
    )
    lr_reference_batch: int | None = Field(
        None,
        ge=1,
        description="The effective batch the learning rates were chosen for; plan warns when the run's differs. "
        "Unset: batch_size x gradient_accumulation (one process, as the guide's rates assume).",
    )


Scheduler = Literal[
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "warmup_stable_decay",
    "piecewise_constant",
    "adafactor",
]


class SchedulerSpec(_Section):
    type: Scheduler = Field("constant", description="Learning-rate schedule (sd-scripts --lr_scheduler).")
    warmup_steps: int | None = Field(None, ge=0, le=MAX_STEPS, description="Warmup length in optimization steps.")
    warmup_ratio: float | None = Field(
        None, ge=0, lt=1, description="Warmup as a fraction of all steps (the GUI's '% of steps')."
    )
    cycles: int = Field(1, ge=1, le=MAX_STEPS, description="Restarts for cosine_with_restarts.")
    power: float = Field(1.0, gt=0, description="Power for the polynomial schedule.")
    args: dict[str, ArgValue] = Field(default_factory=dict, description="Extra scheduler keyword arguments.")
    custom: str | None = Field(
        None,
        min_length=1,
        description="A scheduler class used instead of type: a name in torch.optim.lr_scheduler (CosineAnnealingLR) "
        "or a full class path; it takes scheduler.args (sd-scripts --lr_scheduler_type).",
    )


# --------------------------------------------------------------------------- training, output, sample, launch


class TrainingSpec(_Section):
    epochs: int | None = Field(
        10, ge=1, le=MAX_EPOCHS, description="Epochs to train (the guide: 10). Give this or max_steps."
    )
    max_steps: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="Train this many optimization steps instead of epochs."
    )
    save_every_n_epochs: int | None = Field(
        1,
        ge=1,
        le=MAX_EPOCHS,
        description="Save a checkpoint every N epochs (the guide: every epoch, then pick by loss).",
    )
    save_every_n_steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="Also save every N steps.")
    save_last_n_epochs: int | None = Field(
        None, ge=1, le=MAX_EPOCHS, description="Keep only the newest N epoch checkpoints."
    )
    save_last_n_steps: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="Keep only the step checkpoints of the last N steps."
    )
    save_state: bool = Field(
        False, description="Also save the optimizer's state with each checkpoint, to resume from (a -state folder)."
    )
    save_state_on_train_end: bool = Field(
        False, description="Save the state once, at the end of training (without save_state's every checkpoint)."
    )
    save_last_n_epochs_state: int | None = Field(
        None, ge=1, le=MAX_EPOCHS, description="Keep only the newest N epoch states (default: save_last_n_epochs)."
    )
    save_last_n_steps_state: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="Keep only the states of the last N steps (default: save_last_n_steps)."
    )
    resume: SpecPath | None = Field(None, description="Resume from a saved state folder (NAME-000004-state).")
    prior_loss_weight: float = Field(
        1.0, ge=0, description="Loss weight of the regularization images (dataset subsets with regularization)."
    )
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        "bf16", description="bf16 on RTX 30xx and newer; fp16 on older cards; no for CPU."
    )
    save_precision: Literal["fp16", "bf16", "float"] = Field("fp16", description="Precision of saved weights.")
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] | Literal["random"] = Field(
        42,
        description="Random seed, recorded with every run; `random` draws one each time the spec is read (the run's "
        "lock records the number, so a rerun repeats it).",
    )
    cache_latents: Literal["off", "memory", "disk"] = Field(
        "memory", description="Encode images with the VAE once: in memory, on disk (reused across runs), or off."
    )
    gradient_checkpointing: bool = Field(False, description="Trade speed for VRAM.")
    gradient_accumulation: int = Field(
        1, ge=1, le=MAX_BATCH, description="Steps whose gradients are summed per optimizer step."
    )
    noise_offset: float | None = Field(None, ge=0, le=1, description="Noise offset (darker darks); 0.05-0.1.")
    min_snr_gamma: float | None = Field(None, gt=0, description="Min-SNR loss weighting; 5 is common.")
    multires_noise_iterations: int | None = Field(
        None, ge=1, le=64, description="Multi-resolution (pyramid) noise: its levels; 6-10 is common."
    )
    multires_noise_discount: float | None = Field(
        None, gt=0, le=1, description="Multi-resolution noise: weight of each lower level (sd-scripts: 0.3)."
    )
    adaptive_noise_scale: float | None = Field(
        None, description="Adds this x the latent's mean absolute value to the noise offset; needs noise_offset."
    )
    ip_noise_gamma: float | None = Field(
        None, ge=0, le=1, description="Input perturbation noise (about 0.1), against exposure bias."
    )
    min_timestep: int | None = Field(None, ge=0, le=999, description="Train on timesteps from this one (0-999).")
    max_timestep: int | None = Field(None, ge=1, le=1000, description="Train on timesteps below this one (1-1000).")
    loss_type: Literal["l2", "l1", "huber", "smooth_l1"] = Field(
        "l2", description="Loss: l2 (MSE), l1, huber or smooth_l1 (the Huber ones take huber_*)."
    )
    huber_c: float | None = Field(None, gt=0, description="Huber loss threshold (sd-scripts: 0.1).")
    huber_schedule: Literal["snr", "exponential", "constant"] | None = Field(
        None, description="How huber_c changes over timesteps (sd-scripts: snr)."
    )
    huber_scale: float | None = Field(None, gt=0, description="Huber loss scale (sd-scripts: 1.0).")
    debiased_estimation_loss: bool = Field(
        False, description="Weight the loss against the bias of high-SNR timesteps (debiased estimation)."
    )
    zero_terminal_snr: bool = Field(
        False, description="Rescale the noise schedule to zero SNR at the last timestep; for v-prediction models."
    )
    scale_v_pred_loss_like_noise_pred: bool = Field(
        False, description="Scale the v-prediction loss like noise prediction's; needs v-prediction."
    )
    attention: Literal["sdpa", "xformers", "mem_eff", "none"] = Field(
        "sdpa", description="Attention implementation: sdpa (PyTorch), xformers, mem_eff or none."
    )
    max_token_length: Literal[75, 150, 225] = Field(75, description="Caption token window: 75, 150 or 225.")
    workers: Annotated[int, Field(ge=0, le=MAX_PROCESSES)] | Literal["auto"] = Field(
        "auto",
        description="Data-loader worker processes (0 = load in the main process); auto: from the machine's CPUs "
        "and memory, at most 4 per training process (plan says what it chose).",
    )
    persistent_workers: bool | Literal["auto"] = Field(
        "auto", description="Keep data-loader workers between epochs; auto: when there are workers."
    )
    stop_on_nan: bool = Field(True, description="Stop the run when the average loss becomes NaN (artlab-kohya).")
    blocks_to_swap: int | None = Field(
        None, ge=1, le=60, description="FLUX.1/SD3: transformer blocks kept in CPU memory and swapped in (less VRAM)."
    )
    cache_text_encoder_outputs: Literal["off", "memory", "disk"] = Field(
        "off",
        description="SDXL, FLUX.1, SD3: encode every caption once and free the text encoders (memory or disk); "
        "needs network.train: unet and no caption shuffle or dropout.",
    )


class OutputSpec(_Section):
    name: Annotated[str, AfterValidator(_file_name)] = Field(
        "lora",
        description="Checkpoint file name stem: NAME-000001.safetensors ... NAME.safetensors.",
    )
    dir: SpecPath | None = Field(
        None, description="Where checkpoints go; unset = the run folder (render: the -o folder)."
    )
    format: Literal["safetensors", "ckpt", "pt"] = Field(
        "safetensors", description="safetensors (cannot run code when loaded); ckpt/pt only if you must."
    )
    logging_dir: SpecPath | None = Field(None, description="TensorBoard logs; unset = OUTPUT/logs.")
    log_with: Literal["tensorboard", "wandb", "all", "none"] = Field(
        "tensorboard", description="Where training scalars are logged."
    )
    comment: str | None = Field(None, description="Stored in the LoRA's metadata (training_comment).")
    log_prefix: str | None = Field(
        None, min_length=1, description="Put before the name of each run's log folder (sd-scripts --log_prefix)."
    )
    wandb_run_name: str | None = Field(
        None, min_length=1, description="The run's name in Weights & Biases (with log_with wandb or all)."
    )


class SampleSpec(_Section):
    prompts: list[str] = Field(
        default_factory=list,
        description="Sample prompts, one per image, with sd-scripts options (--n negative --w 512 --h 512 --s 28).",
    )
    every_n_epochs: int | None = Field(None, ge=1, le=MAX_EPOCHS, description="Render samples every N epochs.")
    every_n_steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="Render samples every N steps.")
    sampler: Literal[
        "ddim",
        "pndm",
        "lms",
        "euler",
        "euler_a",
        "heun",
        "dpm_2",
        "dpm_2_a",
        "dpmsolver",
        "dpmsolver++",
        "dpmsingle",
        "k_lms",
        "k_euler",
        "k_euler_a",
        "k_dpm_2",
        "k_dpm_2_a",
    ] = Field("euler_a", description="Sampler for sample images.")
    at_first: bool = Field(False, description="Also sample before training starts.")


class LaunchSpec(_Section):
    num_processes: int = Field(
        1, ge=1, le=MAX_PROCESSES, description="Training processes on each machine, one per GPU."
    )
    gpu_ids: list[Annotated[int, Field(ge=0, lt=MAX_PROCESSES)]] | None = Field(
        None, description="GPUs to use, e.g. [0, 1]."
    )
    cpu_threads: int = Field(
        2, ge=1, le=MAX_PROCESSES, description="CPU threads per process (--num_cpu_threads_per_process)."
    )
    mixed_precision: Literal["no", "fp16", "bf16"] | None = Field(
        None, description="accelerate's mixed precision; unset = training.mixed_precision."
    )
    num_machines: int = Field(
        1,
        ge=1,
        le=MAX_PROCESSES,
        description="Machines one run spans, each with num_processes (accelerate --num_machines).",
    )
    machine_rank: int = Field(
        0, ge=0, lt=MAX_PROCESSES, description="This machine's rank, 0 for the main one (--machine_rank)."
    )
    main_process_ip: str | None = Field(
        None, description="Address of machine 0 when num_machines > 1 (--main_process_ip); SLURM jobs set it."
    )
    main_process_port: int | None = Field(
        None, ge=1, le=65535, description="Port of machine 0 when num_machines > 1 (--main_process_port); unset: 29500."
    )
    rdzv_backend: Literal["static", "c10d"] = Field(
        "static", description="torchrun's rendezvous across machines (--rdzv_backend): static ranks or c10d."
    )
    same_network: bool = Field(
        True, description="The machines share a local network (--same_network): rank 0's address and port directly."
    )
    profile: Literal["default", "fast"] = Field(
        "default",
        description="default: fast settings that do not change what is learned (data-loader workers, fused AdamW, "
        "latents cached 4 at a time on a 24 GiB card). fast: also this card's `artlab-kohya tune` result, and "
        "latents cached 4 at a time on any CUDA card.",
    )
    cudnn_benchmark: bool | None = Field(
        None,
        description="Let cuDNN time its convolution algorithms once and keep the fastest (torch.backends.cudnn"
        ".benchmark); unset: off, or what `tune` chose for this card with profile fast.",
    )


class KohyaSpec(_Section):
    dir: SpecPath | None = Field(
        None, description="sd-scripts folder (or a kohya_ss install's sd-scripts); else ARTLAB_KOHYA_DIR, vendor/."
    )
    python: SpecPath | None = Field(
        None,
        description="The trainer's Python or venv; else $ARTLAB_KOHYA_PYTHON, else a venv/ or .venv/ in or beside "
        "the sd-scripts folder (kohya_ss's), else artlab-kohya's own (it must then have torch).",
    )
    extra_args: dict[Annotated[str, AfterValidator(_not_a_credential)], ArgValue] = Field(
        default_factory=dict,
        description="More train_network.py arguments, checked against its argument surface. Escape hatch.",
    )


class FluxSpec(_Section):
    guidance_scale: float = Field(
        1.0, ge=0, description="Guidance the FLUX.1 dev transformer is told during training (1.0 in sd-scripts' docs)."
    )
    timestep_sampling: Literal["sigma", "uniform", "sigmoid", "shift", "flux_shift"] = Field(
        "shift", description="How timesteps are drawn (sd-scripts' docs: shift or flux_shift; sigmoid is common)."
    )
    discrete_flow_shift: float = Field(3.1582, gt=0, description="Shift for timestep_sampling shift.")
    model_prediction_type: Literal["raw", "additive", "sigma_scaled"] = Field(
        "raw", description="How the model's output is read (raw in sd-scripts' FLUX docs)."
    )
    t5xxl_max_token_length: int | None = Field(
        None, ge=1, le=512, description="T5 tokens per caption; unset: 512 for dev, 256 for schnell."
    )
    apply_t5_attn_mask: bool = Field(False, description="Mask T5's padding tokens in attention.")
    split_mode: bool = Field(
        False, description="Deprecated in sd-scripts (it sets blocks_to_swap 18); use training.blocks_to_swap."
    )
    train_blocks: Literal["all", "single", "double"] = Field(
        "all", description="Which transformer blocks the LoRA wraps (networks.lora_flux's train_blocks)."
    )
    split_qkv: bool = Field(
        False, description="A LoRA of its own for each of q, k and v in the double blocks (networks.lora_flux)."
    )
    train_t5xxl: bool = Field(False, description="Train a LoRA on T5-XXL too (needs the text-encoder cache off).")
    cpu_offload_checkpointing: bool = Field(
        False, description="Keep the gradient-checkpointing activations in CPU memory (less VRAM, slower)."
    )


class Sd3Spec(_Section):
    t5xxl_max_token_length: int = Field(256, ge=1, le=512, description="T5 tokens per caption.")
    apply_lg_attn_mask: bool = Field(False, description="Mask CLIP-L/G's padding tokens.")
    apply_t5_attn_mask: bool = Field(False, description="Mask T5's padding tokens in attention.")
    weighting_scheme: Literal["sigma_sqrt", "logit_normal", "mode", "cosmap", "none", "uniform"] = Field(
        "uniform", description="Loss weighting over timesteps."
    )
    training_shift: float = Field(1.0, gt=0, description="Timestep shift (3.0 for SD3.5 in sd-scripts' docs).")
    logit_mean: float = Field(0.0, description="Mean of the logit_normal weighting scheme.")
    logit_std: float = Field(1.0, gt=0, description="Standard deviation of the logit_normal weighting scheme.")
    mode_scale: float = Field(1.29, description="Scale of the mode weighting scheme.")
    clip_l_dropout_rate: float = Field(0.0, ge=0, le=1, description="Share of captions CLIP-L sees empty.")
    clip_g_dropout_rate: float = Field(0.0, ge=0, le=1, description="Share of captions CLIP-G sees empty.")
    t5_dropout_rate: float = Field(0.0, ge=0, le=1, description="Share of captions T5-XXL sees empty.")
    enable_scaled_pos_embed: bool = Field(
        False, description="Scale the position embedding to each bucket's resolution (multi-resolution SD3.5 medium)."
    )
    pos_emb_random_crop_rate: float = Field(
        0.0, ge=0, le=1, description="Share of steps that crop the position embedding at random (SD3.5 medium)."
    )
    train_t5xxl: bool = Field(False, description="Train a LoRA on T5-XXL too (needs the text-encoder cache off).")


class Spec(_Section):
    version: Literal[1] = Field(1, description="Spec format version.")
    model: ModelSpec = Field(description="The base model.")
    dataset: DatasetSpec = Field(description="Images, captions, resolution, batches.")
    network: NetworkSpec = Field(
        description="The network to train: lora, dylora, or LyCORIS locon, loha, lokr, ia3, glora, boft, diag-oft."
    )
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec, description="Optimizer and learning rates.")
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec, description="Learning-rate schedule.")
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Length, precision, memory.")
    output: OutputSpec = Field(default_factory=OutputSpec, description="Checkpoint names, format, logs.")
    sample: SampleSpec = Field(default_factory=SampleSpec, description="Sample images during training.")
    launch: LaunchSpec = Field(default_factory=LaunchSpec, description="How accelerate launches the trainer.")
    kohya: KohyaSpec = Field(default_factory=KohyaSpec, description="Which sd-scripts install runs it.")
    flux: FluxSpec | None = Field(None, description="FLUX.1 training settings (family flux1 only).")
    sd3: Sd3Spec | None = Field(None, description="SD3/SD3.5 training settings (family sd3 only).")
