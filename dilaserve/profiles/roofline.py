"""A step-cost profile for a GPU nobody has measured yet, derived from a measured one by roofline.

The step-cost model is t = a*forwards + b*refresh_tokens + c*reuse_tokens + d*attended_kv. Each
term is bound by one resource of the GPU, so each coefficient scales by the ratio of that resource
between the measured GPU and the target:
- a, seconds per forward: a small-batch forward reads every weight once, so it is bound by
  memory bandwidth (an 8B model in bf16 reads 16 GB per forward; at batch 1 its FLOPs are ~1% of
  what the GPU could do in that time);
- b and c, seconds per query token: each token costs ~2 x parameters FLOPs in the matmuls, so
  they are bound by dense bf16 tensor throughput;
- d, seconds per attended key/value: attention reads the cached K/V, bound by memory bandwidth.
The TP all-reduce link (`tp_overhead.link_gbytes_per_s`, half the per-direction NVLink or PCIe
bandwidth, as `solver.tp_extrapolation` assumes for the A100) and the memory that bounds the KV
cache (`gpu_memory_gb`) are replaced by the target's.

What this assumes: the target reaches the same fraction of its peaks as the measured GPU did.
That is optimistic where a newer GPU's compute outgrows what small kernels can use (H100/H200
per-token terms), so a derived profile is a starting point until `make gpu-check` or
`dilaserve profile` measures the real one; the file says `derived` in its provenance and `plan`
shows it.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

from dilaserve.profiles.step_cost import StepCostModel, StepCostProfile

DATASHEETS = "NVIDIA datasheets: A100 SXM4 80GB, H100 SXM5, H200 SXM, L40S (dense, no sparsity)"


@dataclass(frozen=True)
class GpuSpec:
    name: str  # as Ray reports the accelerator type
    bf16_tflops: float  # dense tensor-core throughput
    memory_gbytes_per_s: float  # HBM / GDDR bandwidth
    memory_gb: float
    link_gbytes_per_s: float  # one direction of the GPU-to-GPU link (NVLink, else PCIe)


GPUS: dict[str, GpuSpec] = {
    spec.name: spec
    for spec in (
        GpuSpec("A100", 312.0, 2039.0, 80.0, 300.0),
        GpuSpec("H100", 989.0, 3350.0, 80.0, 450.0),
        GpuSpec("H200", 989.0, 4800.0, 141.0, 450.0),
        GpuSpec("L40S", 362.0, 864.0, 48.0, 32.0),  # no NVLink: PCIe 4.0 x16
    )
}
LINK_USE = 0.5  # the all-reduce ring gets half a link's bandwidth (solver.tp_extrapolation)


def gpu_spec(name: str) -> GpuSpec:
    for key, spec in GPUS.items():
        if key.lower() == name.lower():
            return spec
    raise ValueError(f"no datasheet figures for GPU {name!r}; known: {', '.join(GPUS)}")


def derive(measured: StepCostProfile, target: str) -> StepCostProfile:
    """`measured` (on a GPU of `GPUS`) re-scaled to the GPU named `target`."""
    if measured.provenance.get("derived"):
        raise ValueError("derive from a measured (or published) profile, not a derived one")
    src, dst = gpu_spec(measured.hardware), gpu_spec(target)
    if src.name == dst.name:
        raise ValueError(f"the profile is already for {src.name}")
    bandwidth = src.memory_gbytes_per_s / dst.memory_gbytes_per_s
    compute = src.bf16_tflops / dst.bf16_tflops
    a, b, c, d = measured.cost.coef
    coef = (a * bandwidth, b * compute, c * compute, d * bandwidth)
    provenance = copy.deepcopy(measured.provenance)
    assumed = provenance.get("assumed")
    if isinstance(assumed, dict):
        assumed["gpu_memory_gb"] = dst.memory_gb
        if isinstance(assumed.get("tp_overhead"), dict):
            assumed["tp_overhead"]["link_gbytes_per_s"] = dst.link_gbytes_per_s * LINK_USE
    provenance["derived"] = {
        "method": "roofline (dilaserve.profiles.roofline): per-forward and per-attended-KV "
                  "terms x memory-bandwidth ratio, per-token terms x bf16 FLOPs ratio",
        "from": {"hardware": src.name, "model": measured.model,
                 "source": measured.provenance.get("source", "measured")},
        "specs": {src.name: asdict(src), dst.name: asdict(dst)},
        "spec_source": DATASHEETS,
        "scales": {"memory_bandwidth": bandwidth, "compute": compute},
    }
    return StepCostProfile(
        model=measured.model, hardware=dst.name, dtype=measured.dtype, tp=measured.tp,
        cache_mode=measured.cache_mode, cost=StepCostModel(coef),
        median_rel_error=float("nan"), provenance=provenance, samples=())


def provenance_line(profile: StepCostProfile) -> str:
    """One line for people: where a profile's numbers come from."""
    derived = profile.provenance.get("derived")
    if derived:
        return f"derived from {derived['from']['hardware']} by roofline (datasheet ratios)"
    if "assumed" in profile.provenance:
        return "published figures (assumptions in the file)"
    return "measured"
