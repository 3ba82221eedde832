"""The machine `dilaserve gpu-check` ran on, for the profiles' provenance and the summary: the
device's name and profile key, the driver, torch / CUDA / Triton versions, memory, bandwidth."""

from __future__ import annotations

import datetime
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass

import torch

from dilaserve.benches.gpu_check_shapes import BANDWIDTH_SOURCE, known_bandwidth
from worker.measure.profile_files import hardware_name


@dataclass(frozen=True)
class DeviceFacts:
    device: str  # "cuda" or "cpu"
    name: str  # torch's device name ("NVIDIA H200") or the CPU's
    hardware: str  # the step-cost profiles' key ("H200", "cpu-x86_64-2threads")
    driver: str | None
    torch: str
    cuda: str | None
    triton: str | None
    memory_bytes: int | None
    bandwidth_tbs: float | None
    bandwidth_source: str
    date: str

    def to_json(self) -> dict:
        return asdict(self)


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def driver_version() -> str | None:
    """The NVIDIA driver: NVML (nvidia-ml-py) when it imports, else nvidia-smi, else None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # not installed, or no NVML library here
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


def device_facts(device: torch.device, bandwidth_tbs: float | None = None) -> DeviceFacts:
    """`bandwidth_tbs` overrides the table (a GPU it does not list, or a CPU)."""
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        memory = torch.cuda.get_device_properties(device).total_memory
        driver, cuda = driver_version(), torch.version.cuda
    else:
        name = f"CPU {platform.machine()}, torch threads: {torch.get_num_threads()}"
        memory = driver = cuda = None
    known = known_bandwidth(name) if device.type == "cuda" else None
    if bandwidth_tbs is not None:
        tbs, source = bandwidth_tbs, "--bandwidth-tbs"
    elif known is not None:
        tbs, source = known[0], f"{known[1]} row of {BANDWIDTH_SOURCE}"
    else:
        tbs, source = None, f"not in the table ({BANDWIDTH_SOURCE}); pass --bandwidth-tbs"
    return DeviceFacts(device.type, name, hardware_name(device), driver, torch.__version__, cuda,
                       _triton_version(), memory, tbs, source, date)
