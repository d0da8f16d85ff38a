"""The arguments only some families' scripts take (sdxl_train_network.py, flux_train_network.py,
sd3_train_network.py), and what those scripts refuse, found before launch.

`render` adds `family_sections` to the sections it renders and passes its network table through
`family_network`; every key is then checked against the family script's argument surface like the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from ..models.netsize import released_blocks
from ..spec.families import ALIASES, FAMILY_INFO, Component, Family, architecture
from ..spec.model import DyLoraNetwork, FluxSpec, LoraNetwork, Sd3Spec, Spec
from .plan import dit_blocks_of, sd3_variant_of

Problem = tuple[tuple[str | int, ...], str]
_SD3_SET = (
    "logit_mean", "logit_std", "mode_scale", "clip_l_dropout_rate", "clip_g_dropout_rate", "t5_dropout_rate",
    "enable_scaled_pos_embed", "pos_emb_random_crop_rate",
)  # fmt: skip
_DIT = ("flux1", "sd3")
_SD_UNET_ONLY = (
    "block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas", "down_lr_weight", "mid_lr_weight",
    "up_lr_weight",
)  # fmt: skip


def alias_component(spec: Spec, name: Component) -> bool:
    """Whether the spec's alias brings this component (FLUX.1/SD3 aliases name their text encoders)."""
    source = spec.model.source
    return source.type == "alias" and name in ALIASES[source.name].components


def family_sections(spec: Spec, family: Family, components: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Extra TOML sections for `family` (none for SD1/SD2); None and False values are dropped by render.
    `components` holds the resolved paths of the files FAMILY_INFO[family].components names."""
    info, training = FAMILY_INFO[family], spec.training
    sections: dict[str, dict[str, Any]] = {}
    if info.text_encoder_cache:
        cache = training.cache_text_encoder_outputs
        sections["text_encoder_arguments"] = {
            "cache_text_encoder_outputs": cache != "off",
            "cache_text_encoder_outputs_to_disk": cache == "disk",
        }
    if family not in _DIT:
        if spec.model.fp8_base:  # train_network.py / sdxl_train_network.py take it for the U-Net
            sections["family_model_arguments"] = {"fp8_base": True}
        return sections
    files: dict[str, Any] = {name: str(components[name]) if name in components else None for name in info.components}
    files["fp8_base"] = spec.model.fp8_base
    files["blocks_to_swap"] = training.blocks_to_swap
    sections["family_model_arguments"] = files
    if family == "flux1":
        flux = spec.flux or FluxSpec()
        sections["flux_arguments"] = {
            "guidance_scale": flux.guidance_scale,
            "timestep_sampling": flux.timestep_sampling,
            "discrete_flow_shift": flux.discrete_flow_shift,
            "model_prediction_type": flux.model_prediction_type,
            "t5xxl_max_token_length": flux.t5xxl_max_token_length,
            "apply_t5_attn_mask": flux.apply_t5_attn_mask,
            "split_mode": flux.split_mode,
            "cpu_offload_checkpointing": flux.cpu_offload_checkpointing,
        }
    else:
        sd3 = spec.sd3 or Sd3Spec()
        sections["sd3_arguments"] = {
            "t5xxl_max_token_length": sd3.t5xxl_max_token_length,
            "apply_lg_attn_mask": sd3.apply_lg_attn_mask,
            "apply_t5_attn_mask": sd3.apply_t5_attn_mask,
            "weighting_scheme": sd3.weighting_scheme,
            "training_shift": sd3.training_shift,
            # written when set: at their defaults they are sd-scripts' own
            **{
                name: getattr(sd3, name)
                for name in _SD3_SET
                if getattr(sd3, name) != Sd3Spec.model_fields[name].default
            },
        }
    return sections


def family_network(table: dict[str, Any], spec: Spec, family: Family) -> dict[str, Any]:
    """The network table for `family`: FLUX.1 and SD3 train LoRA with their own modules (networks.lora_flux,
    networks.lora_sd3), which take train_blocks / train_t5xxl as network args."""
    if not isinstance(spec.network, LoraNetwork) or family not in _DIT:
        return table
    args = list(table.get("network_args") or [])
    if family == "flux1" and spec.flux is not None and spec.flux.train_blocks != "all":
        args.append(f"train_blocks={spec.flux.train_blocks}")
    if family == "flux1" and spec.flux is not None and spec.flux.split_qkv:
        args.append("split_qkv=True")
    section = spec.flux if family == "flux1" else spec.sd3
    if section is not None and section.train_t5xxl:
        args.append("train_t5xxl=True")
    return {**table, "network_module": FAMILY_INFO[family].lora_module, "network_args": args or None}


def family_problems(spec: Spec, family: Family) -> list[Problem]:
    """What the family's script would refuse, after loading the model: located at the spec field."""
    return _text_encoder_cache(spec, family) + _dit(spec, family)


def _text_encoder_cache(spec: Spec, family: Family) -> list[Problem]:
    problems: list[Problem] = []
    training = spec.training
    at = ("training", "cache_text_encoder_outputs")
    if training.cache_text_encoder_outputs == "off":
        return problems
    if not FAMILY_INFO[family].text_encoder_cache:
        problems.append((at, f"{family} trains with train_network.py, which has no text-encoder cache; set off"))
    elif spec.network.train != "unet":
        problems.append((at, "a cached text encoder cannot be trained: set network.train: unet, or the cache off"))
    for section, name in ((spec.flux, "flux"), (spec.sd3, "sd3")):
        if section is not None and section.train_t5xxl:
            problems.append(((name, "train_t5xxl"), "T5-XXL cannot be trained from cached outputs; set the cache off"))
    for i, sub in enumerate(spec.dataset.subsets):
        for name in ("shuffle_caption", "caption_dropout_rate", "caption_tag_dropout_rate"):
            if getattr(sub, name):
                problems.append(
                    (("dataset", "subsets", i, name), f"{name} changes captions each epoch, so it cannot be "
                     "used with training.cache_text_encoder_outputs; set one of them off")
                )  # fmt: skip
    return problems


def _dit(spec: Spec, family: Family) -> list[Problem]:
    """FLUX.1 and SD3: their files, their sections, the networks that know their blocks."""
    problems: list[Problem] = []
    info, model, net = FAMILY_INFO[family], spec.model, spec.network
    for name in get_args(Component):
        given = getattr(model, name) is not None
        if given and name not in info.components:
            used = " and ".join(f for f, i in FAMILY_INFO.items() if name in i.components and not f.endswith("-v"))
            problems.append((("model", name), f"is a file of {used} models; {family} does not use it"))
        elif name in info.components and not given and not alias_component(spec, name):
            problems.append(
                (("model", name), f"{family} needs its {name} file: a local path or {{type: hub, repo, file}}")
            )
    for section, owner in (("flux", "flux1"), ("sd3", "sd3")):
        if getattr(spec, section) is not None and family != owner:
            problems.append(((section,), f"holds {owner} settings, but the model is {family}"))
    if spec.training.blocks_to_swap is not None and family not in _DIT:
        problems.append((("training", "blocks_to_swap"), f"is for FLUX.1 and SD3 (their scripts); not {family}"))
    if family not in _DIT:
        return problems
    if family == "flux1" and model.vae is not None:
        problems.append((("model", "vae"), "FLUX.1's autoencoder is model.ae"))
    if isinstance(net, DyLoraNetwork) and not info.dylora:
        problems.append(
            (("network", "type"), f"networks.dylora wraps none of {family}'s transformer blocks; use lora or LyCORIS")
        )
    own = spec.flux if family == "flux1" else spec.sd3
    if own is not None and not isinstance(net, LoraNetwork):
        module = FAMILY_INFO[family].lora_module
        if own.train_t5xxl:
            at = ("flux" if family == "flux1" else "sd3", "train_t5xxl")
            problems.append((at, f"is {module}'s (type: lora); {net.type} never wraps T5-XXL"))
        if isinstance(own, FluxSpec) and own.train_blocks != "all":
            problems.append((("flux", "train_blocks"), f"is {module}'s (type: lora); {net.type} wraps every block"))
    if isinstance(net, LoraNetwork):
        for name in _SD_UNET_ONLY:
            if getattr(net, name) is not None:
                problems.append((("network", name), f"is for the SD U-Net's blocks; {family} has none"))
    if model.clip_skip is not None:
        problems.append((("model", "clip_skip"), f"{family} does not use clip_skip"))
    if model.v_parameterization:
        problems.append((("model", "v_parameterization"), f"{family} is a flow-matching model, not v-prediction"))
    return problems + _block_swap(spec, family)


def _swappable(family: Family, blocks: tuple[int, int], n: int) -> bool:
    """What enable_block_swap asserts (flux_models.Flux, sd3_models.MMDiT): two blocks of each kind stay
    on the GPU. FLUX.1 swaps n // 2 double blocks and twice the rest in single blocks."""
    if family == "flux1":
        return n // 2 <= blocks[0] - 2 and (n - n // 2) * 2 <= blocks[1] - 2
    return n <= blocks[0] - 2


def _block_swap(spec: Spec, family: Family) -> list[Problem]:
    """Block swap beyond what the transformer allows stops the script after loading the model; split_mode
    (without blocks_to_swap) swaps 18 blocks."""
    split = family == "flux1" and spec.flux is not None and spec.flux.split_mode
    n, at = spec.training.blocks_to_swap, ("training", "blocks_to_swap")
    if n is None and split:
        n, at = 18, ("flux", "split_mode")
    blocks = dit_blocks_of(spec) or released_blocks(architecture(family), sd3_variant_of(spec))
    if n is None or blocks is None or _swappable(family, blocks, n):
        return []
    most = max((k for k in range(1, sum(blocks)) if _swappable(family, blocks, k)), default=0)
    flux = family == "flux1"
    kinds = f"{blocks[0]} double and {blocks[1]} single blocks" if flux else f"{blocks[0]} joint blocks"
    what = "swaps 18 blocks" if at[0] == "flux" else f"is {n}"
    room = f"at most {most}" if most else "too few to swap any"
    keeps = "2 of each kind" if flux else "2"
    return [(at, f"{what}, but this transformer has {kinds} ({room}: sd-scripts keeps {keeps} on the GPU)")]
