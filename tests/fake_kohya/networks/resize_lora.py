"""Stand-in for sd-scripts' networks/resize_lora.py (see tests/fake_kohya/README.md): the real argument
surface, the recorded output of a real resize, and a file whose lora_down/lora_up ranks are --new_rank."""

import sys

from _tool import header, parse, replay, write

args = parse("resize_lora")
rc = replay("tool_resize_lora", {})  # its log wraps the paths at 80 columns: left as recorded
if rc == 0:
    found = header(args.model)
    meta = dict(found.pop("__metadata__", {}), ss_network_dim=str(args.new_rank))
    dtype = {"fp16": "F16", "bf16": "BF16"}.get(args.save_precision, "F32")
    tensors = {}
    for key, entry in found.items():
        shape = list(entry["shape"])
        if key.endswith("lora_down.weight"):
            shape[0] = min(shape[0], args.new_rank)
        elif key.endswith("lora_up.weight"):
            shape[1] = min(shape[1], args.new_rank)
        tensors[key] = (dtype, shape)
    write(args.save_to, tensors, meta)
sys.exit(rc)
