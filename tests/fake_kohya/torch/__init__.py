"""Fake torch for tests: what the version probe asks of it, for a CPU-only build, or with FAKE_CUDA_GPU
(a JSON object of torch.cuda.get_device_properties' fields: name, total_memory, major, minor) for a build
with that one CUDA card. The probe runs with the sd-scripts folder first on its path, as the trainer does,
so it finds this and the fake accelerate."""

import json
import os
from types import SimpleNamespace

_GPUS = [json.loads(os.environ["FAKE_CUDA_GPU"])] if os.environ.get("FAKE_CUDA_GPU") else []

__version__ = "0.0.0+fake"
version = SimpleNamespace(cuda="13.0" if _GPUS else None)
backends = SimpleNamespace(cudnn=SimpleNamespace(benchmark=False))


class cuda:
    is_available = staticmethod(lambda: bool(_GPUS))
    device_count = staticmethod(lambda: len(_GPUS))
    get_device_properties = staticmethod(lambda i: SimpleNamespace(**_GPUS[i]))
    is_bf16_supported = staticmethod(lambda: True)
