"""The profiles a simulation runs on: step costs per (hardware, TP), the quality profile, and the
deployment figures around them (reload time, engine limits, TP overhead).

`load_sim_profiles(directory)` reads a directory of profile JSONs in the project's schema (the
published LLaDA-8B one, or the shipped model's measured ones). Deployment figures come from the
step-cost profile's provenance when it records them (`sim.published` does); otherwise from the
model's config.json beside the profiles directory and the defaults below, named in `notes`.
A TP degree without a profile is extrapolated exactly as the solver does it
(`solver.tp_extrapolation`), so the simulated replicas and the plan agree on step costs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from sim.published import PUBLISHED_DIR, LladaAssumptions, assumptions_from
from solver.capacity import service_affine
from solver.tp_extrapolation import TpOverhead, extrapolate
from solver.types import Profiles
from worker.engine.step_types import EngineLimits
from worker.profiles.quality import QUALITY_SCHEMA, QualityProfile
from worker.profiles.step_cost import STEP_COST_SCHEMA, StepCostModel, StepCostProfile

SHIPPED_PROFILES = (Path(__file__).resolve().parent.parent / "worker" / "models" / "shipped"
                    / "tiny-dlm" / "profiles")
DEFAULT_RELOAD_S = 5.0  # a small model on one host: weights from the page cache
DEFAULT_MAX_ROWS = 16


@dataclass(frozen=True)
class SimProfiles:
    name: str
    step_costs: tuple[StepCostProfile, ...]
    quality: QualityProfile
    tp_overhead: TpOverhead
    reload_s: float
    drain_s: float
    max_rows: int
    max_seq_len: int
    tokens_per_gpu: int  # KV tokens one GPU holds (a TP-t replica holds t x this, minus weights)
    weights_tokens: int  # KV tokens the weights displace (on top of the per-GPU figure)
    notes: tuple[str, ...] = field(default=())

    @property
    def hardware(self) -> tuple[str, ...]:
        return tuple(sorted({p.hardware for p in self.step_costs}))

    @property
    def reference_block(self) -> int:
        ref = self.quality.reference
        blocks = self.quality.block_sizes()
        return ref.block_size if ref.block_size in blocks else blocks[0]

    def solver_profiles(self) -> Profiles:
        return Profiles(self.step_costs, self.quality, self.tp_overhead)

    def step_profile(self, hardware: str, tp: int) -> StepCostProfile:
        have = {p.tp: p for p in self.step_costs if p.hardware.lower() == hardware.lower()}
        if not have:
            raise ValueError(f"no step-cost profile for hardware {hardware!r} "
                             f"(profiled: {list(self.hardware)})")
        if tp in have:
            return have[tp]
        base = max((t for t in have if t < tp), default=None)
        if base is None:
            raise ValueError(f"no step-cost profile at or below TP={tp} on {hardware}")
        return extrapolate(have[base], tp, self.tp_overhead)

    def cost(self, hardware: str, tp: int) -> StepCostModel:
        return self.step_profile(hardware, tp).cost

    def limits(self, tp: int) -> EngineLimits:
        tokens = max(self.max_seq_len, tp * self.tokens_per_gpu - self.weights_tokens)
        return EngineLimits(self.max_rows, tokens, self.max_seq_len)

    def unloaded_latency(self, prompt_len: int, canvas_len: int, decoded_len: int,
                         hardware: str | None = None) -> float:
        """Seconds alone (batch 1) at the quality reference threshold on the smallest profiled
        TP degree: the serving papers' unloaded latency. A request that stops early (EOS) pays
        for the blocks it decodes, over the full canvas's sequence length."""
        prof = min((p for p in self.step_costs
                    if hardware is None or p.hardware.lower() == hardware.lower()),
                   key=lambda p: p.tp)
        block = self.reference_block
        tps = self.quality.at(self.quality.reference.threshold, block).tokens_per_step
        s0, s1 = service_affine(prof.cost, prof.cache_mode, prompt_len, canvas_len, block, tps)
        return (s0 + s1) * decoded_len / canvas_len



def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"profile {path}: not valid JSON: {err.msg}") from None


def load_sim_profiles(directory: str | Path = PUBLISHED_DIR) -> SimProfiles:
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"profiles: no such directory {str(directory)!r}")
    steps, quality = [], None
    for path in sorted(directory.glob("*.json")):
        data = _read(path)
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema == STEP_COST_SCHEMA:
            steps.append(StepCostProfile.from_json(data))
        elif schema == QUALITY_SCHEMA:
            if quality is not None:
                raise ValueError(f"profiles {directory}: more than one quality profile")
            quality = QualityProfile.from_json(data)
    if not steps:
        raise ValueError(f"profiles {directory}: no step-cost profile (*.json with schema "
                         f"{STEP_COST_SCHEMA})")
    if quality is None:
        raise ValueError(f"profiles {directory}: no quality profile (schema {QUALITY_SCHEMA})")
    # one cache mode per simulation: the one the smallest-TP profile was measured with
    mode = min(steps, key=lambda p: p.tp).cache_mode
    steps = [p for p in steps if p.cache_mode == mode]
    recorded = "assumed" in steps[0].provenance
    if recorded:
        return _from_assumptions(directory, steps, quality, assumptions_from(steps[0]))
    return _from_model_dir(directory, steps, quality)


def _from_assumptions(directory: Path, steps: list[StepCostProfile], quality: QualityProfile,
                      assume: LladaAssumptions) -> SimProfiles:
    per_gpu = assume.gpu_memory_gb - assume.activation_reserve_gb
    tokens_per_gpu = int(per_gpu * 1e9 / assume.kv_bytes_per_token)
    weights = int(assume.weights_gb * 1e9 / assume.kv_bytes_per_token)
    context = int(steps[0].provenance.get("published", {}).get("architecture", {})
                  .get("context", 4096))
    return SimProfiles(directory.name, tuple(steps), quality, assume.tp_overhead,
                       assume.reload_s, assume.drain_s, assume.max_rows, context,
                       tokens_per_gpu, weights,
                       (f"deployment figures from {directory.name}'s provenance (assumed)",))


def _from_model_dir(directory: Path, steps: list[StepCostProfile],
                    quality: QualityProfile) -> SimProfiles:
    config = directory.parent / "config.json"
    max_seq = 4096
    notes = [f"reload {DEFAULT_RELOAD_S:g} s and {DEFAULT_MAX_ROWS} rows per replica (defaults)"]
    if config.is_file():
        max_seq = int(_read(config).get("max_seq_len", max_seq))
        notes.append(f"max_seq_len {max_seq} from {config}")
    else:
        notes.append(f"max_seq_len {max_seq} (default: no config.json beside the profiles)")
    tokens = DEFAULT_MAX_ROWS * max_seq
    return SimProfiles(directory.parent.name if directory.name == "profiles" else directory.name,
                       tuple(steps), quality, TpOverhead(), DEFAULT_RELOAD_S, DEFAULT_RELOAD_S,
                       DEFAULT_MAX_ROWS, max_seq, tokens, 0, tuple(notes))


def resolve_profiles(name: str) -> SimProfiles:
    """`llada-8b` (published), `shipped` (the shipped model's measured profiles) or a directory."""
    if name in ("llada-8b", "published"):
        return load_sim_profiles(PUBLISHED_DIR)
    if name == "shipped":
        return load_sim_profiles(SHIPPED_PROFILES)
    return load_sim_profiles(name)
