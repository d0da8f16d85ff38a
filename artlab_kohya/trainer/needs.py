"""What running a spec needs of the trainer's Python, and whether that Python has it.

Asked of the version probe (inside/probe_versions.py, cached per environment), never of torch here, so
a missing torch, accelerate or bitsandbytes stops `run` before launch, in a second, rather than after
the trainer has loaded the model. `init` and `render` read only a probe already cached, to stay instant.
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..spec.presets import Machine
from .install import (
    Install,
    InstallError,
    cached_versions,
    check_install,
    describe_python,
    find_install,
    python_advice,
)
from .pins import pip_requirement

if TYPE_CHECKING:
    from ..spec import Issue, LoadedSpec
    from ..spec.model import Spec


@dataclass(frozen=True)
class Need:
    """A module the spec needs, any one of `modules` (import names, as the probe reports them)."""

    modules: tuple[str, ...]
    field: tuple[str | int, ...]  # the spec field that asks for it
    what: str  # "optimizer AdamW8bit"
    instead: str  # what to change in the spec to do without it


_EIGHT_BIT = "or use optimizer.type: AdamW (the 8-bit optimizers also need a CUDA GPU)"


def _optimizer_needs(name: str) -> tuple[str, str] | None:
    """(module, instead) for an sd-scripts optimizer name (library/train_util.py get_optimizer)."""
    low = name.lower()
    if "." in name:  # a class path: its top-level package, if it is one the probe asks about
        top = name.split(".")[0]
        return (top, "or choose another optimizer.type") if top in PROBED else None
    if low.endswith("8bit") or low.startswith("paged"):
        return "bitsandbytes", _EIGHT_BIT
    if low == "lion":
        return "lion_pytorch", "or use optimizer.type: AdamW"
    if low.startswith("dadapt"):
        return "dadaptation", "or use optimizer.type: Prodigy or AdamW"
    if low == "prodigy":
        return "prodigyopt", "or use optimizer.type: AdamW"
    if low.endswith("schedulefree"):
        return "schedulefree", "or use optimizer.type: AdamW"
    return None


# The optional modules inside/probe_versions.py imports (its MODULES), besides accelerate.
PROBED = frozenset(
    {"bitsandbytes", "lycoris", "prodigyopt", "dadaptation", "schedulefree", "lion_pytorch", "xformers"}
    | {"tensorboard", "tensorboardX", "wandb"}
)


def spec_needs(spec: Spec) -> list[Need]:
    """The optional modules this spec makes sd-scripts import, each with the field that asks for it."""
    needs = []
    if (opt := _optimizer_needs(spec.optimizer.type)) is not None:
        needs.append(Need((opt[0],), ("optimizer", "type"), f"optimizer {spec.optimizer.type}", opt[1]))
    if spec.kohya.extra_args.get("optimizer_schedulefree_wrapper"):
        needs.append(
            Need(
                ("schedulefree",),
                ("kohya", "extra_args", "optimizer_schedulefree_wrapper"),
                "the schedule-free wrapper",
                "or drop optimizer_schedulefree_wrapper",
            )
        )
    if spec.network.type in ("locon", "loha", "lokr"):
        needs.append(
            Need(("lycoris",), ("network", "type"), f"network {spec.network.type} (LyCORIS)", "or use type: lora")
        )
    if spec.training.attention == "xformers":
        needs.append(Need(("xformers",), ("training", "attention"), "attention xformers", "or set attention: sdpa"))
    log_with = spec.output.log_with
    if log_with in ("tensorboard", "all"):
        # accelerate's TensorBoard tracker takes either package
        needs.append(
            Need(
                ("tensorboard", "tensorboardX"), ("output", "log_with"), f"log_with {log_with}", "or set log_with: none"
            )
        )
    if log_with in ("wandb", "all"):
        needs.append(
            Need(("wandb",), ("output", "log_with"), f"log_with {log_with}", "or set log_with: tensorboard or none")
        )
    return needs


def _pip(install: Install, module: str) -> str:
    return shlex.join([install.python, "-m", "pip", "install", pip_requirement(module)])


def trainer_problem(install: Install, versions: dict[str, Any]) -> str | None:
    """Why this Python cannot run sd-scripts at all (no torch, no accelerate, no answer), else None."""
    if "error" in versions:
        return f"cannot ask {describe_python(install)} what it has installed: {versions['error']}"
    missing = []
    torch = versions.get("torch") or {}
    if "error" in torch:
        missing.append(("torch", str(torch["error"])))
    accelerate = (versions.get("modules") or {}).get("accelerate")
    if accelerate is not None:
        missing.append(("accelerate", str(accelerate)))
    if not missing:
        return None
    names = " and ".join(name for name, _ in missing)
    errors = "; ".join(error for _, error in missing)
    fix = python_advice(install, pip_requirement(missing[0][0]))
    return f"{describe_python(install)} cannot import {names} ({errors}), so it cannot run sd-scripts: {fix}"


def missing_modules(loaded: LoadedSpec, install: Install, versions: dict[str, Any]) -> list[Issue]:
    """The spec's needs that the trainer's Python cannot import, located at the field that asks."""
    modules: dict[str, Any] = versions.get("modules") or {}
    issues = []
    for need in spec_needs(loaded.spec):
        if any(m not in modules for m in need.modules):
            continue  # not asked of this environment: the trainer will tell
        errors = [modules[m] for m in need.modules]
        if None in errors:
            continue
        module = need.modules[0]
        issues.append(
            loaded.issue(
                "error",
                need.field,
                f"{need.what} needs {module}, which the trainer Python {install.python} cannot import "
                f"({errors[0]}): install it with `{_pip(install, module)}`, {need.instead}",
            )
        )
    return issues


def device_issues(loaded: LoadedSpec, versions: dict[str, Any], family: str) -> list[Issue]:
    """What the trainer's device cannot run. SD3 block swap without CUDA takes sd-scripts' CPU path
    (custom_offloading_utils.swap_weight_devices_no_cuda, "not tested"), which pairs the modules of a
    swapped block with those of the last joint block, whose context block is smaller: the first step fails
    with AttributeError: 'Sequential' object has no attribute 'weight'. FLUX.1's blocks are alike, so its
    block swap runs there (tests/test_engine_families.py runs both)."""
    torch = versions.get("torch") or {}
    if not family.startswith("sd3") or loaded.spec.training.blocks_to_swap is None or "error" in torch:
        return []
    if torch.get("cuda_available"):
        return []
    message = (
        "SD3 block swap needs a CUDA GPU: without one sd-scripts swaps through its untested CPU path, which "
        "fails at the first step (AttributeError: 'Sequential' object has no attribute 'weight'); remove it "
        "on this trainer"
    )
    return [loaded.issue("error", ("training", "blocks_to_swap"), message)]


def check_trainer(loaded: LoadedSpec, install: Install, versions: dict[str, Any], family: str | None = None) -> None:
    """Refuse to launch what would fail on import: InstallError when the Python cannot run sd-scripts at
    all, SpecError (located) when it lacks a module the spec asks for, or its device cannot run a setting of
    the `family` it trains. `versions` is the run's probe."""
    from ..spec import SpecError

    if (problem := trainer_problem(install, versions)) is not None:
        raise InstallError(problem)
    issues = missing_modules(loaded, install, versions)
    issues += device_issues(loaded, versions, family) if family is not None else []
    if issues:
        raise SpecError(issues, loaded.path)


def command_notes(install: Install) -> list[str]:
    """What makes a printed launch command not runnable as it stands, one line each; never probes."""
    try:
        check_install(install)
    except InstallError as exc:
        return [f"not runnable yet: {exc}", "set kohya.dir (or ARTLAB_KOHYA_DIR) to an sd-scripts or kohya_ss folder"]
    if install.own_python:
        return [
            f"no trainer environment found: {install.python_from}",
            "this command uses artlab-kohya's own Python, which trains only if sd-scripts' requirements are "
            "installed in it; set kohya.python (or ARTLAB_KOHYA_PYTHON) to the trainer's Python or venv",
        ]
    versions = cached_versions(install)
    if versions is not None and (problem := trainer_problem(install, versions)) is not None:
        return [f"as last probed, {problem}"]
    return []


def guess_machine() -> Machine:
    """What `init` can tell, cheaply, of this machine: the cached probe of the trainer it would use (CUDA,
    bf16, bitsandbytes), else whether nvidia-smi (the NVIDIA driver's tool) is installed. Never imports
    torch and never runs the trainer's Python."""
    install = find_install(None)
    versions = cached_versions(install)
    torch = (versions or {}).get("torch") or {}
    if versions is not None and "error" not in torch:
        modules = versions.get("modules") or {}
        eight_bit = None if "bitsandbytes" not in modules else modules["bitsandbytes"] is None
        if torch.get("cuda_available"):
            return Machine(True, bool(torch.get("bf16")), eight_bit, "as the trainer's torch was last probed")
        return Machine(False, False, eight_bit, f"the trainer's torch ({install.python}) sees no CUDA GPU")
    if shutil.which("nvidia-smi"):
        return Machine(True, None, None, "nvidia-smi is installed")
    return Machine(False, None, None, "no NVIDIA driver here (no nvidia-smi) and no trainer probed yet")
