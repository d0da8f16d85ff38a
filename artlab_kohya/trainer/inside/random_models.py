"""What the build_*_random.py scripts share: text-encoder configurations, saving, the toy T5 tokenizer, main().

Run by the trainer's Python, beside those scripts (their folder is first on sys.path): it imports torch,
safetensors and tokenizers from the trainer environment, and nothing of artlab-kohya.

Every builder is `build(folder, *args) -> dict` run by `main(build)`, which reads
`SD_SCRIPTS_DIR ARGS... OUT_JSON` from argv, works in the sd-scripts folder and writes the builder's
result, or {"error", "message"} for any failure, to OUT_JSON (stdout belongs to sd-scripts' imports).
"""

import json
import os
import string
import sys
import traceback

# transformers' T5EncoderModel with the configuration flux_utils.load_t5xxl builds (SD3 loads the same)
T5_CONFIG = {
    "d_ff": 10240, "d_kv": 64, "d_model": 4096, "dense_act_fn": "gelu_new", "eos_token_id": 1,
    "feed_forward_proj": "gated-gelu", "is_gated_act": True, "layer_norm_epsilon": 1e-06,
    "num_heads": 64, "num_layers": 24, "pad_token_id": 0, "relative_attention_max_distance": 128,
    "relative_attention_num_buckets": 32, "tie_word_embeddings": False, "vocab_size": 32128,
}  # fmt: skip
# the CLIP text models sd3_utils.load_clip_l / load_clip_g build (FLUX.1's CLIP-L is the same)
CLIP_L_CONFIG = {
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "projection_dim": 768,
}  # fmt: skip
CLIP_G_CONFIG = dict(
    CLIP_L_CONFIG, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
    hidden_act="gelu", projection_dim=1280,
)  # fmt: skip


def bf16_state(model, prefix=""):
    """The model's tensors in bf16 on the CPU; those already there in bf16 are not copied (a CPU build
    of T5-XXL would otherwise need twice its 9.8 GB). T5's tied embeddings stay two entries, as its
    released files have them; `write` stores each entry on its own."""
    import torch

    return {prefix + key: value.detach().to("cpu", torch.bfloat16) for key, value in model.state_dict().items()}


def write(state, path, files):
    """Save a state dict as safetensors; note its parameters and bytes in files[name]; the parameter count.

    Written a tensor at a time: safetensors' save_file first copies every tensor into one buffer, which
    for T5-XXL doubles the memory a CPU build needs (about 20 GB rather than 10).
    """
    import torch

    dtypes = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}
    header, offset = {}, 0
    for key, tensor in state.items():
        size = tensor.numel() * tensor.element_size()
        header[key] = {
            "dtype": dtypes[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for tensor in state.values():
            f.write(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    count = sum(v.numel() for v in state.values())
    files[os.path.basename(path)] = {"params": count, "bytes": os.path.getsize(path)}
    return count


def build_text_encoders(out, device, names, files):
    """Random CLIP-L, CLIP-G (with projections) and T5-XXL, as named in `names`, saved into `out`.

    names: {"clip_l" | "clip_l_proj" | "clip_g" | "t5xxl": file name}; "clip_l" is FLUX.1's CLIP-L
    (no projection), "clip_l_proj" SD3's. T5-XXL is built in bf16, the CLIP models in fp32 (as
    transformers initialises them) and saved in bf16. The total parameter count.
    """
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    makers = {
        "clip_l": lambda: CLIPTextModel(CLIPTextConfig(**CLIP_L_CONFIG)),
        "clip_l_proj": lambda: CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_L_CONFIG)),
        "clip_g": lambda: CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G_CONFIG)),
        "t5xxl": lambda: T5EncoderModel(T5Config(**T5_CONFIG)),
    }
    total = 0
    for kind, name in names.items():
        torch.set_default_dtype(torch.bfloat16 if kind == "t5xxl" else torch.float32)
        with torch.device(device):
            model = makers[kind]()
        torch.set_default_dtype(torch.float32)
        state = bf16_state(model)
        del model
        total += write(state, os.path.join(out, name), files)
        del state
        if device == "cuda":
            torch.cuda.empty_cache()
    return total


def t5_tokenizer(folder):
    """A small Unigram tokenizer.json that T5TokenizerFast loads, in sd-scripts' google_t5-v1_1-xxl folder.

    sd-scripts' T5 tokenizer is a SentencePiece model not shipped with it; this one is good for random
    weights, not for a real model.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    os.makedirs(folder, exist_ok=True)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in string.ascii_letters + string.digits + string.punctuation]
    pieces += [("\u2581" + c, -2.5) for c in string.ascii_letters + string.digits]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    tokenizer.save(os.path.join(folder, "tokenizer.json"))
    special = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    config = {"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "model_max_length": 512, **special}
    for name, data in (("tokenizer_config.json", config), ("special_tokens_map.json", special)):
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)


def main(build, memory_note=None):
    """argv: SD_SCRIPTS_DIR ARGS... OUT_JSON; build(SD_SCRIPTS_DIR, *ARGS) in that folder; exit 0 or 3."""
    folder, *args, result_path = sys.argv[1:]
    os.chdir(folder)
    sys.path.insert(0, folder)
    try:
        result = build(folder, *args)
    except ImportError as exc:
        result = {"error": "import", "module": exc.name, "message": str(exc)}
    except MemoryError:
        result = {"error": "MemoryError", "message": "out of memory" + (f" ({memory_note})" if memory_note else "")}
    except BaseException as exc:  # noqa: BLE001 - every failure goes back as data
        result = {"error": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()[-4000:]}
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    sys.exit(0 if "error" not in result else 3)
