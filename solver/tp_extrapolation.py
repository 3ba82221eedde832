"""A step-cost model for an unprofiled TP degree, extrapolated from a profiled smaller one.

For a profiled degree s and a wanted degree t > s (s is usually 1), a step with features f takes

    time_t(f) = time_s(f) * (s / t) * (1 + efficiency_loss) + comm_t(f) - comm_s(f)

where comm_k is the tensor-parallel communication of one step: 2 all-reduces per layer per forward
(after attention and after the MLP), each a ring all-reduce of the forward's query activations:

    comm_k(f) = forwards * 2 * layers * allreduce_latency_s
              + (refresh_tokens + reuse_tokens) * 2 * layers * hidden_size * bytes_per_elem
                * 2 (k - 1) / k / link_bandwidth            (comm_1 = 0)

Both parts are linear in the step features, so the result is again a `StepCostModel`; the plan
lists every extrapolated (hardware, TP) pair with these parameters, and the profile's provenance
says `source: modelled`. A measured profile at that degree (`dilaserve profile --tp N`) always
wins over this model (solver/instance.py uses a profiled degree as it is).

Where the numbers come from: the communication term is the ring all-reduce time as nccl-tests
defines its bus bandwidth (NVIDIA/nccl-tests, doc/PERFORMANCE.md: for all-reduce,
busbw = algbw x 2(n-1)/n, i.e. time = bytes x 2(n-1)/n / busbw), plus a fixed latency per call.
The defaults are assumptions, not measurements: 150 GB/s of bus bandwidth is half of an A100
SXM's per-direction NVLink bandwidth (300 of its 600 GB/s total, NVIDIA's A100 datasheet; an H100
SXM has 450 of 900), leaving room for one step's MB-sized messages not reaching peak; 10 us per
all-reduce and the 10% efficiency loss are assumed. docs/parallel.md has the modelled step times.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from dilaserve.profiles.step_cost import StepCostModel, StepCostProfile


@dataclass(frozen=True)
class TpOverhead:
    """Parameters of the extrapolation (defaults: an 8B-class model on NVLink)."""

    efficiency_loss: float = 0.10  # compute no longer divides perfectly by t
    layers: int = 32
    hidden_size: int = 4096
    bytes_per_elem: int = 2
    allreduce_latency_s: float = 10e-6  # fixed cost of one all-reduce
    link_gbytes_per_s: float = 150.0  # per-GPU ring bandwidth

    def __post_init__(self) -> None:
        for name in ("efficiency_loss", "allreduce_latency_s"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"tp_overhead.{name} must be a finite number >= 0, got {v!r}")
        for name in ("layers", "hidden_size", "bytes_per_elem"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"tp_overhead.{name} must be a whole number >= 1, got {v!r}")
        v = self.link_gbytes_per_s
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"tp_overhead.link_gbytes_per_s must be > 0, got {v!r}")

    def comm_coef(self, tp: int) -> tuple[float, float]:
        """(seconds per forward, seconds per query token) of TP all-reduces at degree `tp`."""
        if tp <= 1:
            return 0.0, 0.0
        per_forward = 2 * self.layers * self.allreduce_latency_s
        ring = 2 * (tp - 1) / tp
        per_token = (2 * self.layers * self.hidden_size * self.bytes_per_elem * ring
                     / (self.link_gbytes_per_s * 1e9))
        return per_forward, per_token

    def describe(self) -> str:
        return (f"time/t x (1+{self.efficiency_loss:g}) + 2x{self.layers} all-reduces per "
                f"forward ({self.allreduce_latency_s * 1e6:g} us + "
                f"{self.hidden_size}x{self.bytes_per_elem} B/token at "
                f"{self.link_gbytes_per_s:g} GB/s, ring)")


def extrapolate_cost(base: StepCostModel, base_tp: int, tp: int,
                     overhead: TpOverhead) -> StepCostModel:
    if tp < base_tp:
        raise ValueError(f"can only extrapolate to a larger TP degree, got {base_tp} -> {tp}")
    a, b, c, d = base.coef
    scale = base_tp / tp * (1 + overhead.efficiency_loss) if tp > base_tp else 1.0
    f_t, tok_t = overhead.comm_coef(tp)
    f_s, tok_s = overhead.comm_coef(base_tp)
    d_f, d_tok = max(0.0, f_t - f_s), max(0.0, tok_t - tok_s)
    return StepCostModel((a * scale + d_f, b * scale + d_tok, c * scale + d_tok, d * scale))


def extrapolate(base: StepCostProfile, tp: int, overhead: TpOverhead) -> StepCostProfile:
    """The profile `base` would have at degree `tp`, marked as modelled (extrapolated) in its
    provenance."""
    return StepCostProfile(
        model=base.model, hardware=base.hardware, dtype=base.dtype, tp=tp,
        cache_mode=base.cache_mode, cost=extrapolate_cost(base.cost, base.tp, tp, overhead),
        median_rel_error=float("nan"),
        provenance={"source": "modelled", "extrapolated_from_tp": base.tp,
                    "tp_overhead": asdict(overhead), "model": overhead.describe()},
    )


def link_overhead(profile: StepCostProfile, default: TpOverhead) -> TpOverhead:
    """`default` with the GPU link of a profile derived for another GPU
    (`dilaserve.profiles.roofline` records the target's link in the provenance): an L40S on PCIe
    must not be planned with the A100's NVLink."""
    recorded = profile.provenance.get("assumed", {}).get("tp_overhead", {})
    if "derived" not in profile.provenance or "link_gbytes_per_s" not in recorded:
        return default
    return replace(default, link_gbytes_per_s=float(recorded["link_gbytes_per_s"]))
