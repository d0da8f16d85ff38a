"""Build random-initialised FLUX.1 files with sd-scripts' own model code, and a toy T5 tokenizer.

Run by the trainer's Python, not ours: it imports sd-scripts, torch, transformers and tokenizers from the
trainer environment, and its neighbour random_models.py, nothing else.

    python build_flux_random.py SD_SCRIPTS_DIR OUT_FOLDER SEED DOUBLE,SINGLE TOKENIZER_DIR [dev|schnell] OUT_JSON

Writes OUT_FOLDER/flux1_random.safetensors (library/flux_models.Flux with the parameters of the "dev"
configuration, or "schnell": no guidance embedder, and DOUBLE double / SINGLE single blocks: 19,38 is
the full 11.9e9-parameter model, 23.8 GB in bf16; flux_utils reads the block counts and dev or schnell
back from the keys), ae_random.safetensors (flux_models.AutoEncoder), clip_l_random.safetensors (a CLIP
ViT-L text model) and t5xxl_random.safetensors (transformers' T5EncoderModel with the configuration
flux_utils.load_t5xxl builds: 4.9e9 parameters, 9.8 GB in bf16, whatever the transformer's size), all in
bf16, each in the layout flux_utils' loaders read back; TOKENIZER_DIR/google_t5-v1_1-xxl gets the toy T5
tokenizer. On a GPU the weights are initialised there; writing the 33 GB takes most of the time. Writes
{"params", "files", "seconds", "device"} or {"error", "message"} to OUT_JSON.
"""

import os
import time
from dataclasses import replace

import random_models as shared


def build(folder, out, seed, blocks, tokenizer_dir, config="dev"):
    import torch
    from library import flux_models

    started = time.time()
    os.makedirs(out, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    double, single = (int(n) for n in blocks.split(","))
    torch.manual_seed(int(seed))
    files = {}
    spec = flux_models.configs[config]
    flux_params = replace(spec.params, depth=double, depth_single_blocks=single)
    params = 0
    for name, make in (
        ("flux1_random.safetensors", lambda: flux_models.Flux(flux_params)),
        ("ae_random.safetensors", lambda: flux_models.AutoEncoder(spec.ae_params)),
    ):
        torch.set_default_dtype(torch.bfloat16 if name.startswith("flux1") else torch.float32)
        with torch.device(device):
            model = make()
        torch.set_default_dtype(torch.float32)
        state = shared.bf16_state(model)
        del model
        params += shared.write(state, os.path.join(out, name), files)
        del state
        if device == "cuda":
            torch.cuda.empty_cache()
    names = {"clip_l": "clip_l_random.safetensors", "t5xxl": "t5xxl_random.safetensors"}
    params += shared.build_text_encoders(out, device, names, files)
    shared.t5_tokenizer(os.path.join(tokenizer_dir, "google_t5-v1_1-xxl"))
    return {"params": params, "files": files, "seconds": round(time.time() - started, 1), "device": device}


if __name__ == "__main__":
    shared.main(build)
