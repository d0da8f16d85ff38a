"""Stand-in for sd-scripts' networks/merge_lora.py (see tests/fake_kohya/README.md): the real argument surface,
the recorded output of a real merge into a checkpoint (tool_merge_lora), and the merged file: the checkpoint's
tensors (with --sd_model) or the first LoRA's (LoRAs into one LoRA)."""

import os
import sys

from _tool import header, parse, replay, write

SCRIPT = os.environ.get("FAKE_MERGE_SCRIPT", "merge_lora")


def main() -> None:
    args = parse(SCRIPT)
    rewrite = {"/home/artist/lora/runs/tools/merged.safetensors": args.save_to}
    if args.sd_model:
        rewrite["/home/artist/lora/models/sd15_random_fp16.safetensors"] = args.sd_model
    rewrite["/home/artist/lora/runs/tools/real_lora.safetensors"] = args.models[0]
    rc = replay("tool_merge_lora", rewrite)
    if rc == 0:
        found = header(args.sd_model or args.models[0])
        meta = found.pop("__metadata__", {})
        write(args.save_to, {k: (v["dtype"], v["shape"]) for k, v in found.items()}, meta)
    sys.exit(rc)


if __name__ == "__main__":
    main()
