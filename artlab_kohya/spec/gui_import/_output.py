"""Output names and folders, logging, sample images, and the accelerate launch settings."""

from __future__ import annotations

import re

from ..gui import BY_NAME
from ..model import name_problem
from ._conversion import Conversion, placeholder


def output(c: Conversion) -> None:
    name = str(c.get("output_name") or "last")
    if name_problem(name):
        safe = re.sub(r"[^\w.\-]", "_", name).strip(".") or "lora"
        c.put("output.name", safe, "output_name", note=f"'{name}' made a file name")
        c.warn(f"output.name: '{name}' {name_problem(name)}; written as '{safe}'")
    else:
        c.put("output.name", name, "output_name")
    c.put("output.format", c.get("save_model_as"), "save_model_as")
    for gui, path in (("output_dir", "output.dir"), ("logging_dir", "output.logging_dir")):
        value = c.get(gui)
        if value and placeholder(value):
            c.skip(gui, "the preset's placeholder, not a folder: the run's own folder is used (set it in the spec)")
        elif value:
            c.put(path, value, gui)
            c.path_exists(path, value, folder=True)
    log_with = str(c.get("log_with") or "")
    if log_with:
        c.put("output.log_with", log_with, "log_with")
    elif not c.get("logging_dir"):
        c.put("output.log_with", "none", "log_with", "logging_dir", note="both empty: sd-scripts logs nothing")
    comment = c.get("training_comment")
    if comment:
        c.put("output.comment", comment, "training_comment")


def sample(c: Conversion) -> None:
    prompts = [line.strip() for line in str(c.get("sample_prompts") or "").splitlines() if line.strip()]
    if prompts:
        c.put("sample.prompts", prompts, "sample_prompts")
        for gui, path in (("sample_every_n_epochs", "every_n_epochs"), ("sample_every_n_steps", "every_n_steps")):
            value = c.get(gui)
            if value:
                c.put(f"sample.{path}", value, gui)
        c.put("sample.sampler", c.get("sample_sampler"), "sample_sampler")
    else:
        for name in ("sample_every_n_epochs", "sample_every_n_steps", "sample_sampler"):
            if c.get(name) and name != "sample_sampler":
                c.skip(name, "no sample prompts: nothing to sample")


def launch(c: Conversion) -> None:
    processes = c.get("num_processes") or 1
    if processes != 1:
        c.put("launch.num_processes", processes, "num_processes", "multi_gpu")
    else:
        c.done.add("multi_gpu")
    threads = c.get("num_cpu_threads_per_process")
    if threads and threads != 2:
        c.put("launch.cpu_threads", threads, "num_cpu_threads_per_process")
    ids = str(c.get("gpu_ids") or "")
    if ids:
        c.put("launch.gpu_ids", [int(i) for i in ids.split(",") if i.strip().isdigit()], "gpu_ids")
    machines = c.get("num_machines") or 1
    if machines != 1:
        c.put("launch.num_machines", machines, "num_machines")
        c.warn(
            "launch.num_machines: a GUI config names no address of machine 0: set launch.main_process_ip "
            "(and launch.machine_rank on each machine)"
        )
    port = c.get("main_process_port")
    if port and machines != 1:
        c.put("launch.main_process_port", port, "main_process_port")
    elif port:
        c.skip("main_process_port", "one machine: artlab-kohya lets accelerate choose its port")
    for name in (
        "dynamo_backend",
        "dynamo_mode",
        "dynamo_use_fullgraph",
        "dynamo_use_dynamic",
        "extra_accelerate_launch_args",
    ):
        value = c.raw.get(name)
        c.done.add(name)
        if name in c.raw and value not in ("", None, False, 0, 1, "no", "default", "0", "1"):
            c.skip(name, BY_NAME[name].why)
