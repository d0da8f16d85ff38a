"""Build random-initialised FLUX.1 dev files with sd-scripts' own model code, and a toy T5 tokenizer.

Run by the trainer's Python, not ours: it imports sd-scripts, torch, transformers and tokenizers from the
trainer environment, and nothing of artlab-kohya.

    python build_flux_random.py SD_SCRIPTS_DIR OUT_FOLDER SEED DOUBLE,SINGLE TOKENIZER_DIR OUT_JSON

Writes OUT_FOLDER/flux1_random.safetensors (library/flux_models.Flux with the "dev" parameters and
DOUBLE double / SINGLE single blocks: 19,38 is the full 11.9e9-parameter model, 23.8 GB in bf16),
ae_random.safetensors (flux_models.AutoEncoder), clip_l_random.safetensors (a CLIP ViT-L text model)
and t5xxl_random.safetensors (transformers' T5EncoderModel with the configuration
flux_utils.load_t5xxl builds: 4.8e9 parameters, 9.5 GB in bf16), all in bf16, each in the layout
flux_utils' loaders read back. sd-scripts' T5 tokenizer (google/t5-v1_1-xxl) is a SentencePiece model
that is not on this disk, so TOKENIZER_DIR/google_t5-v1_1-xxl gets a small Unigram tokenizer.json that
T5TokenizerFast loads: good for random weights, not for a real model. On a GPU the weights are
initialised there; writing the 33 GB takes most of the time. Writes {"params", "files", "seconds"} or
{"error", "message"} to OUT_JSON.
"""

import json
import os
import string
import sys
import time
import traceback
from dataclasses import replace

# transformers' T5EncoderModel with the configuration flux_utils.load_t5xxl builds (SD3 loads the same)
T5_CONFIG = {
    "d_ff": 10240, "d_kv": 64, "d_model": 4096, "dense_act_fn": "gelu_new", "eos_token_id": 1,
    "feed_forward_proj": "gated-gelu", "is_gated_act": True, "layer_norm_epsilon": 1e-06,
    "num_heads": 64, "num_layers": 24, "pad_token_id": 0, "relative_attention_max_distance": 128,
    "relative_attention_num_buckets": 32, "tie_word_embeddings": False, "vocab_size": 32128,
}  # fmt: skip
CLIP_L_CONFIG = {
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "projection_dim": 768,
}  # fmt: skip


def save(model, path):
    import torch
    from safetensors.torch import save_file

    # to the CPU one tensor at a time; T5's tied embeddings become two tensors, as its released files have
    state = {k: v.detach().to("cpu", torch.bfloat16, copy=True).contiguous() for k, v in model.state_dict().items()}
    save_file(state, path)
    return sum(v.numel() for v in state.values())


def t5_tokenizer(folder):
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


def build(folder, out, seed, blocks, tokenizer_dir):
    sys.path.insert(0, folder)
    import torch
    from library import flux_models
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    started = time.time()
    os.makedirs(out, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    double, single = (int(n) for n in blocks.split(","))
    torch.manual_seed(seed)
    params, files = 0, {}
    spec = flux_models.configs["dev"]
    flux_params = replace(spec.params, depth=double, depth_single_blocks=single)
    builders = (
        ("flux1_random.safetensors", lambda: flux_models.Flux(flux_params)),
        ("ae_random.safetensors", lambda: flux_models.AutoEncoder(spec.ae_params)),
        ("clip_l_random.safetensors", lambda: CLIPTextModel(CLIPTextConfig(**CLIP_L_CONFIG))),
        ("t5xxl_random.safetensors", lambda: T5EncoderModel(T5Config(**T5_CONFIG))),
    )  # fmt: skip
    for name, make in builders:
        torch.set_default_dtype(torch.bfloat16 if name.startswith(("flux1", "t5xxl")) else torch.float32)
        with torch.device(device):
            model = make()
        torch.set_default_dtype(torch.float32)
        count = save(model, os.path.join(out, name))
        files[name] = {"params": count, "bytes": os.path.getsize(os.path.join(out, name))}
        params += count
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    t5_tokenizer(os.path.join(tokenizer_dir, "google_t5-v1_1-xxl"))
    return {"params": params, "files": files, "seconds": round(time.time() - started, 1), "device": device}


def main():
    folder, out, seed, blocks, tokenizer_dir, result_path = sys.argv[1:7]
    os.chdir(folder)
    try:
        result = build(folder, out, int(seed), blocks, tokenizer_dir)
    except ImportError as exc:
        result = {"error": "import", "module": exc.name, "message": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - every failure goes back as data
        result = {"error": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()[-4000:]}
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    sys.exit(0 if "error" not in result else 3)


if __name__ == "__main__":
    main()
