"""Fake torch for tests: what the version probe asks of it, for a CPU-only build. The probe runs with the
sd-scripts folder first on its path, as the trainer does, so it finds this and the fake accelerate."""

from types import SimpleNamespace

__version__ = "0.0.0+fake"
version = SimpleNamespace(cuda=None)
backends = SimpleNamespace(cudnn=SimpleNamespace(benchmark=False))


class cuda:
    is_available = staticmethod(lambda: False)
    device_count = staticmethod(lambda: 0)
