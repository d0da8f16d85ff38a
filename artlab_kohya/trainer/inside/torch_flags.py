"""Start an sd-scripts training script with PyTorch flags that sd-scripts has no option for.

Run by the trainer's Python through `accelerate launch` (one process per GPU), in place of the script:

    accelerate launch torch_flags.py [--cudnn-benchmark] SCRIPT.py --config_file ...

sets the flags, then runs SCRIPT.py as __main__ with its own folder first on the path and its own
arguments, as `accelerate launch SCRIPT.py ...` would have. Standard library and torch only.
--cudnn-benchmark: torch.backends.cudnn.benchmark = True (cuDNN times its convolution algorithms for
each new shape once and keeps the fastest; the same arithmetic, chosen per shape).
"""

import os
import runpy
import sys

FLAGS = ("--cudnn-benchmark",)


def main():
    args = sys.argv[1:]
    flags = []
    while args and args[0] in FLAGS:
        flags.append(args.pop(0))
    if not args:
        sys.exit("usage: torch_flags.py [--cudnn-benchmark] SCRIPT.py [ARGS...]")
    script = os.path.abspath(args[0])
    sys.argv = [script, *args[1:]]
    sys.path[0] = os.path.dirname(script)  # as `python SCRIPT.py` has it: the script's torch, its library/
    import torch

    if "--cudnn-benchmark" in flags:
        torch.backends.cudnn.benchmark = True
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
