"""Where profiles live beside a model, and their names (model, hardware, dtype, TP, cache).

A step-cost profile is found by all four keys: `step_cost.<hardware>.<dtype>.tp<N>.<cache>.json`.
A GPU's hardware name is the accelerator type Ray gives it ("NVIDIA A100-SXM4-80GB" -> "A100"),
so that a profile measured on a node is the one the cluster's planner and replicas look up there.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path

import torch

QUALITY_FILE = "quality.json"
# Ray's NVIDIA accelerator_type rule (ray/_private/accelerators/nvidia_gpu.py): the model token
# after the vendor, e.g. "Tesla V100-SXM2-16GB" -> "V100", "NVIDIA H100 80GB HBM3" -> "H100"
_GPU_NAME = re.compile(r"\w+\s+((?:[A-Z]+\s+)*[A-Z0-9]*\d[A-Z0-9]*)")
_STEP_COST = re.compile(r"step_cost\.(.+)\.([a-z0-9]+)\.tp(\d+)\.([a-z]+)\.json")


def gpu_hardware(device_name: str) -> str:
    match = _GPU_NAME.match(device_name)
    token = match.group(1).replace(" ", "-") if match else ""
    if len(token) > 1:
        return token
    return re.sub(r"^NVIDIA\s+", "", device_name).strip().replace(" ", "-") or device_name


def hardware_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return gpu_hardware(torch.cuda.get_device_name(device))
    return f"cpu-{platform.machine()}-{torch.get_num_threads()}threads"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def step_cost_file(hardware: str, dtype: str, tp: int, cache_mode: str) -> str:
    return f"step_cost.{_slug(hardware)}.{dtype}.tp{tp}.{cache_mode}.json"


def profiles_dir(model_dir: Path) -> Path:
    return model_dir / "profiles"


@dataclass(frozen=True)
class StepCostKey:
    hardware: str  # as in the file name (slugged)
    dtype: str
    tp: int
    cache_mode: str

    def describe(self) -> str:
        return f"{self.hardware} {self.dtype} TP={self.tp} {self.cache_mode}"


def step_cost_keys(directory: Path) -> dict[Path, StepCostKey]:
    out = {}
    for path in sorted(Path(directory).glob("step_cost.*.json")):
        match = _STEP_COST.fullmatch(path.name)
        if match:
            hw, dtype, tp, mode = match.groups()
            out[path] = StepCostKey(hw, dtype, int(tp), mode)
    return out


def _is_cpu(hardware: str) -> bool:
    return _slug(hardware).startswith("cpu-")


def find_step_cost(
    directory: Path,
    cache_mode: str,
    tp: int = 1,
    dtype: str = "float32",
    hardware: str | None = None,
    model: str | Path | None = None,
) -> Path:
    """The step-cost profile for (hardware, dtype, TP, cache mode); hardware None: any.

    A CPU replica also takes a CPU profile measured with another thread count (the worker's
    online step-cost refinement corrects the difference); a GPU replica needs its GPU's own.
    Missing: the error lists the profiles there are and the command that measures this one
    (`model` fills in its --model)."""
    keys = step_cost_keys(directory)
    fits = [p for p, k in keys.items() if (k.dtype, k.tp, k.cache_mode) == (dtype, tp, cache_mode)]
    if hardware is not None:
        wanted = _slug(hardware)
        exact = [p for p in fits if keys[p].hardware == wanted]
        if exact or not _is_cpu(hardware):
            fits = exact
        else:
            arch = wanted.rsplit("-", 1)[0] + "-"  # cpu-x86-64-
            fits = sorted((p for p in fits if _is_cpu(keys[p].hardware)),
                          key=lambda p: not keys[p].hardware.startswith(arch))
    if fits:
        return fits[0]
    raise FileNotFoundError(missing_profile_message(directory, cache_mode, tp, dtype, hardware,
                                                    model, keys))


def choose_step_cost(
    directory: Path,
    cache_mode: str,
    tp: int = 1,
    dtype: str = "float32",
    hardware: str | None = None,
    strict_hardware: bool = True,
    model: str | Path | None = None,
) -> tuple[Path, str]:
    """A replica's step-cost profile, and a note saying how it differs from the replica ("" when
    it is its own). In order: this TP degree on this hardware; TP=1 on this hardware (a TP > 1
    replica without its own profile); unless `strict_hardware` (a cluster's replicas are planned
    on their hardware's profile), the same on other hardware. The worker's online step-cost
    refinement corrects a stand-in from measured steps. Nothing: the first lookup's error."""
    tries = [(tp, hardware)] + ([(1, hardware)] if tp > 1 else [])
    if hardware is not None and not strict_hardware:
        tries += [(t, None) for t, _ in tries]
    first: FileNotFoundError | None = None
    for t, hw in tries:
        try:
            path = find_step_cost(directory, cache_mode, t, dtype, hw, model)
        except FileNotFoundError as err:
            first = first or err
            continue
        if (t, hw) == (tp, hardware):
            return path, ""
        asked = f"{hardware or 'any hardware'} {dtype} TP={tp} {cache_mode}"
        return path, (f"no step-cost profile for {asked} in {directory}; starting from "
                      f"{path.name} (the online step-cost refinement corrects it). Measure one: "
                      f"{_profile_command(directory, cache_mode, tp, dtype, hardware, model)}")
    assert first is not None
    raise first


def _profile_command(directory: Path, cache_mode: str, tp: int, dtype: str,
                     hardware: str | None, model: str | Path | None) -> str:
    device = "cpu" if hardware is None or _is_cpu(hardware) else "cuda"
    return (f"dilaserve profile{f' --model {model}' if model else ''} --device {device} "
            f"--dtype {dtype} --tp {tp} --cache-modes {cache_mode} --what step-cost "
            f"--out {directory}")


def missing_profile_message(directory: Path, cache_mode: str, tp: int, dtype: str,
                            hardware: str | None, model: str | Path | None,
                            keys: dict[Path, StepCostKey]) -> str:
    asked = f"{hardware or 'any hardware'} {dtype} TP={tp} {cache_mode}"
    have = "; ".join(f"{p.name} ({k.describe()})" for p, k in keys.items()) or "none"
    command = _profile_command(directory, cache_mode, tp, dtype, hardware, model)
    where = f" on {hardware}" if hardware else ""
    return (f"no step-cost profile for {asked} in {directory}; it has: {have}. Measure one"
            f"{where}: {command}")
