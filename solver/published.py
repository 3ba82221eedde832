"""The LLaDA-8B profile for GPU clusters, built from published figures until one is measured.

Published (Fast-dLLM, Wu et al. 2025, LLaDA-8B-Instruct on one A100, batch 1):
- GSM8K 8-shot prompt, generation length 1024, block 32: a full forward takes 0.26 s per step, a
  prefix-cache reuse step 0.14 s, a dual-cache reuse step 0.09 s;
- confidence threshold tau = 0.5 / 0.6 / 0.7 / 0.8 / 0.9 / 1.0 (block 32): 7.01 / 6.17 / 5.12 /
  4.24 / 3.25 / 1.00 tokens per step and GSM8K accuracy 66.5 / 72.3 / 76.3 / 77.7 / 79.2 / 79.3 %.
- LLaDA-8B: 32 layers, hidden size 4096, no grouped-query attention, context 4096 tokens.

Everything else is assumed and listed in `LladaAssumptions` (and in the profile's provenance):
the prompt length behind the timings, how attention cost splits from the per-token cost, batch
scaling, TP overhead, reconfiguration time and the engine's limits. `dilaserve bench --sensitivity`
halves and doubles the ones the headline result leans on.

Fit. The cost model is t = a*forwards + b*refresh_tokens + c*reuse_tokens + d*attended_kv. With
b = c (a token costs the same in either phase) and d = c x the attention-to-dense FLOP ratio per
attended key (4 x layers x hidden / (2 x parameters)), the three timings give a and c by least
squares on relative error. A prefix-cache step's query is the block plus the masked suffix; the
published time is the mean over the 32 blocks, i.e. at the mean query length (1024 + 32) / 2
(the model is linear, so the mean of the costs is the cost of the mean).

    python -m solver.published [DIR]    # rewrite the profile files (tests check they are current)
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from dilaserve.core.locations import PUBLISHED_PROFILES_DIR
from dilaserve.core.steps import StepFeatures
from dilaserve.profiles.quality import QualityPoint, QualityProfile
from dilaserve.profiles.step_cost import (
    StepCostModel,
    StepCostProfile,
    StepSample,
    median,
    relative_errors,
    sample_to_json,
)
from solver.tp_extrapolation import TpOverhead

MODEL = "LLaDA-8B-Instruct (Fast-dLLM published figures)"
HARDWARE = "A100"
SOURCE = ("Fast-dLLM: Training-free Acceleration of Diffusion LLM by Enabling KV Cache and "
          "Parallel Decoding (Wu et al., 2025, arXiv:2505.22618); LLaDA (Nie et al., 2025)")

GEN_LEN = 1024
BLOCK = 32
TIMINGS_S = {"full": 0.26, "prefix": 0.14, "dual": 0.09}
# tau -> (tokens per step, GSM8K accuracy)
THRESHOLD_SWEEP = {0.5: (7.01, 0.665), 0.6: (6.17, 0.723), 0.7: (5.12, 0.763),
                   0.8: (4.24, 0.777), 0.9: (3.25, 0.792), 1.0: (1.00, 0.793)}
LAYERS, HIDDEN, PARAMS, CONTEXT = 32, 4096, 8.0e9, 4096


@dataclass(frozen=True)
class LladaAssumptions:
    """Every number the profile needs that the sources do not give."""

    prompt_len: int = 700  # tokens of the GSM8K 8-shot prompt behind the timings
    batch_token_scale: float = 1.0  # per-token cost in a batch vs the batch-1 slope (see below)
    tp_overhead: TpOverhead = field(default_factory=TpOverhead)
    reload_s: float = 60.0  # seconds to bring up a replica (weights load + warm-up)
    drain_s: float = 10.0  # solver's planning figure for draining (the simulator models drains)
    max_rows: int = 64  # rows one replica batches (the solver's max_batch)
    kv_bytes_per_token: int = 2 * LAYERS * HIDDEN * 2  # K and V, bf16: 512 KiB
    gpu_memory_gb: float = 80.0
    weights_gb: float = 16.0
    activation_reserve_gb: float = 8.0
    sweep_canvas: int = 256  # canvas of the threshold sweep (for forwards_per_request)

    def max_tokens(self, tp: int) -> int:
        free = tp * self.gpu_memory_gb - self.weights_gb - tp * self.activation_reserve_gb
        return int(free * 1e9 / self.kv_bytes_per_token)


ASSUMPTION_NOTES = {
    "prompt_len": "GSM8K 8-shot prompt length behind the timings (not stated with them); at 700 "
                  "tokens the three timings lie on one line (the fit's residuals are reported)",
    "attention_ratio": "d / c = 4 x layers x hidden / (2 x parameters) per attended key (FLOPs)",
    "b_equals_c": "a refresh token and a reuse token cost the same",
    "batch_token_scale": "batch scaling: b rows cost the fixed forward cost once plus b rows of "
                         "tokens at the batch-1 slope (the linear model); the scale multiplies "
                         "b, c, d and re-fits a so the batch-1 dual-cache step stays 0.09 s",
    "tp_overhead": "TP > 1 extrapolated by solver.tp_extrapolation: time / t x (1 + loss) + ring "
                   "all-reduces (NVLink figures)",
    "reload_s": "reconfiguration: seconds before a new replica serves",
    "engine_limits": "max_rows per replica; max_tokens from KV memory (80 GB A100, 16 GB bf16 "
                     "weights, activation reserve)",
    "tokens_per_step_other_blocks": "only block 32 is published; no other block size is profiled",
    "answer_tokens_per_step": "taken equal to tokens_per_step (not published separately)",
    "sweep_canvas": "canvas of the threshold sweep, used only for forwards_per_request",
}


def _features(kind: str, prompt_len: int) -> StepFeatures:
    seq = prompt_len + GEN_LEN
    if kind == "full":
        return StepFeatures(1, seq, 0, seq * (seq + 1))
    query = (GEN_LEN + BLOCK) // 2 if kind == "prefix" else BLOCK
    return StepFeatures(1, 0, query, query * (seq + 1))


def published_samples(prompt_len: int) -> list[StepSample]:
    return [StepSample(_features(k, prompt_len), t) for k, t in TIMINGS_S.items()]


def fit_cost(assume: LladaAssumptions) -> StepCostModel:
    ratio = 4 * LAYERS * HIDDEN / (2 * PARAMS)
    samples = published_samples(assume.prompt_len)
    # t = a + c * (tokens + ratio * attended): two unknowns, weighted by 1 / t
    x = np.array([[1.0, s.features.refresh_tokens + s.features.reuse_tokens
                   + ratio * s.features.attended_kv] for s in samples])
    y = np.array([s.time_s for s in samples])
    w = 1.0 / y
    (a, c), *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
    k = assume.batch_token_scale
    dual = _features("dual", assume.prompt_len)
    per_token_dual = c * (dual.reuse_tokens + ratio * dual.attended_kv)
    a = a + (1.0 - k) * per_token_dual  # keeps the batch-1 dual-cache step where the fit put it
    if a <= 0:
        raise ValueError(f"batch_token_scale {k} leaves no fixed forward cost")
    return StepCostModel((float(a), float(c * k), float(c * k), float(c * k * ratio)))


def step_cost_profile(assume: LladaAssumptions | None = None) -> StepCostProfile:
    assume = assume or LladaAssumptions()
    cost = fit_cost(assume)
    samples = published_samples(assume.prompt_len)
    errors = relative_errors(cost, samples)
    provenance = {
        "source": SOURCE,
        "published": {
            "hardware": "NVIDIA A100, batch 1, LLaDA-8B-Instruct, bf16",
            "generation_length": GEN_LEN, "block_size": BLOCK,
            "step_time_s": TIMINGS_S,
            "architecture": {"layers": LAYERS, "hidden_size": HIDDEN, "parameters": PARAMS,
                             "context": CONTEXT},
        },
        "assumed": {**{k: v for k, v in asdict(assume).items() if k != "tp_overhead"},
                    "tp_overhead": asdict(assume.tp_overhead),
                    "max_tokens_tp1": assume.max_tokens(1),
                    "attention_ratio": 4 * LAYERS * HIDDEN / (2 * PARAMS)},
        "assumption_notes": ASSUMPTION_NOTES,
        "fit": {"method": "least squares on relative error over the 3 published timings",
                "residuals_rel": [round(e, 4) for e in errors]},
    }
    return StepCostProfile(MODEL, HARDWARE, "bfloat16", 1, "dual", cost, median(errors),
                           provenance, tuple(sample_to_json(s, kind=k) for s, k in
                                             zip(samples, TIMINGS_S)))


def quality_profile(assume: LladaAssumptions | None = None) -> QualityProfile:
    assume = assume or LladaAssumptions()
    points = tuple(QualityPoint("threshold", tau, BLOCK, acc, {"gsm8k": acc}, tps, tps,
                                assume.sweep_canvas / tps)
                   for tau, (tps, acc) in sorted(THRESHOLD_SWEEP.items()))
    reference = next(p for p in points if p.threshold == 0.9)
    provenance = {"source": SOURCE,
                  "published": "tokens per step and GSM8K accuracy per threshold, block 32",
                  "assumed": {k: ASSUMPTION_NOTES[k] for k in
                              ("tokens_per_step_other_blocks", "answer_tokens_per_step",
                               "sweep_canvas")}}
    return QualityProfile(MODEL, reference, points, {"task": "gsm8k", "shots": 8}, provenance)


def assumptions_from(profile: StepCostProfile) -> LladaAssumptions:
    """The assumptions recorded in a profile built here (defaults for anything missing)."""
    raw = dict(profile.provenance.get("assumed", {}))
    base = LladaAssumptions()
    kwargs = {k: raw[k] for k in asdict(base) if k in raw and k != "tp_overhead"}
    if "tp_overhead" in raw:
        kwargs["tp_overhead"] = TpOverhead(**raw["tp_overhead"])
    return replace(base, **kwargs)


def write(directory: Path = PUBLISHED_PROFILES_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    step = directory / "step_cost.a100.bfloat16.tp1.dual.json"
    quality = directory / "quality.json"
    step_cost_profile().save(step)
    quality_profile().save(quality)
    return [step, quality]


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else PUBLISHED_PROFILES_DIR):
        print(f"wrote {path}")
