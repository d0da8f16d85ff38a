"""What this machine has that a run's speed depends on: CPUs and memory; and the rule that turns them
into data-loader workers. Read once per call, never cached (a SLURM job reads the node it landed on).

The GPUs are not here: artlab-kohya never imports torch, so they come from the trainer's version probe
(trainer/inside/probe_versions.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_AUTO_WORKERS = 4  # per training process; 4 persistent workers measured 1.23x over none on an H200
WORKER_MEMORY = 2 << 30  # bytes of free memory each worker process is given room for


@dataclass(frozen=True)
class Machine:
    cpus: int  # CPUs this process may run on (affinity, cgroup-limited where the OS says so)
    memory_available: int | None  # bytes, MemAvailable; None where the OS does not say


def this_machine() -> Machine:
    return Machine(cpus=_cpus(), memory_available=_memory_available())


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _memory_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def data_loader_workers(machine: Machine, processes: int, cpu_threads: int) -> tuple[int, str]:
    """Workers per training process, and why: the CPUs left to each process after its own threads, at
    most MAX_AUTO_WORKERS (more measured no faster: the latents are cached, a worker only collates), and
    no more than the free memory has room for."""
    per_process = machine.cpus // max(1, processes)
    by_cpu = max(0, per_process - cpu_threads)
    workers = min(MAX_AUTO_WORKERS, by_cpu)
    why = f"{machine.cpus} CPUs, {processes} training process(es) of {cpu_threads} threads"
    if machine.memory_available is not None:
        by_memory = machine.memory_available // WORKER_MEMORY // max(1, processes)
        if by_memory < workers:
            workers = int(by_memory)
            why += f", {machine.memory_available / (1 << 30):.1f} GiB free (2 GiB a worker)"
    if workers == 0:
        return 0, f"{why}: no CPU to spare, so the main process loads the data"
    return workers, f"{why}: {workers} each" + (f" (at most {MAX_AUTO_WORKERS})" if by_cpu > workers else "")
