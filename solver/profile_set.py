"""The profile set that planners and the simulator run on: step costs per (hardware, TP), the
quality profile, and the deployment figures around them (reload time, engine limits, TP overhead).
The live controller plans from it exactly as the simulator does (`solver_policy` below).

`load_profile_set(directory)` reads a directory of profile JSONs in the project's schema (the
published LLaDA-8B one, or the shipped model's measured ones). Deployment figures come from the
step-cost profile's provenance when it records them (`solver.published` does); otherwise from the
model's config.json beside the profiles directory and the defaults below, named in `notes`.
A TP degree without a profile is extrapolated exactly as the solver does it
(`solver.tp_extrapolation`), so the simulated replicas and the plan agree on step costs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dilaserve.core.locations import PUBLISHED_PROFILES_DIR, SHIPPED_PROFILES_DIR
from dilaserve.core.steps import EngineLimits
from dilaserve.profiles.quality import QUALITY_SCHEMA, QualityProfile
from dilaserve.profiles.step_cost import STEP_COST_SCHEMA, StepCostModel, StepCostProfile
from solver.capacity import service_affine
from solver.published import LladaAssumptions, assumptions_from
from solver.tp_extrapolation import TpOverhead, extrapolate, link_overhead
from solver.types import Cluster, ObjectiveWeights, Profiles, ServingModel, SolverPolicy

DEFAULT_RELOAD_S = 5.0  # a small model on one host: weights from the page cache
DEFAULT_MAX_ROWS = 16


@dataclass(frozen=True)
class ProfileSet:
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
        return extrapolate(have[base], tp, link_overhead(have[base], self.tp_overhead))

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


def load_profile_set(directory: str | Path = PUBLISHED_PROFILES_DIR) -> ProfileSet:
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
                      assume: LladaAssumptions) -> ProfileSet:
    per_gpu = assume.gpu_memory_gb - assume.activation_reserve_gb
    tokens_per_gpu = int(per_gpu * 1e9 / assume.kv_bytes_per_token)
    weights = int(assume.weights_gb * 1e9 / assume.kv_bytes_per_token)
    context = int(steps[0].provenance.get("published", {}).get("architecture", {})
                  .get("context", 4096))
    return ProfileSet(directory.name, tuple(steps), quality, assume.tp_overhead,
                       assume.reload_s, assume.drain_s, assume.max_rows, context,
                       tokens_per_gpu, weights,
                       (f"deployment figures from {directory.name}'s provenance (assumed)",))


def _from_model_dir(directory: Path, steps: list[StepCostProfile],
                    quality: QualityProfile) -> ProfileSet:
    config = directory.parent / "config.json"
    max_seq = 4096
    notes = [f"reload {DEFAULT_RELOAD_S:g} s and {DEFAULT_MAX_ROWS} rows per replica (defaults)"]
    if config.is_file():
        max_seq = int(_read(config).get("max_seq_len", max_seq))
        notes.append(f"max_seq_len {max_seq} from {config}")
    else:
        notes.append(f"max_seq_len {max_seq} (default: no config.json beside the profiles)")
    tokens = DEFAULT_MAX_ROWS * max_seq
    return ProfileSet(directory.parent.name if directory.name == "profiles" else directory.name,
                       tuple(steps), quality, TpOverhead(), DEFAULT_RELOAD_S, DEFAULT_RELOAD_S,
                       DEFAULT_MAX_ROWS, max_seq, tokens, 0, tuple(notes))


def resolve_profiles(name: str) -> ProfileSet:
    """`llada-8b` (published), `shipped` (the shipped model's measured profiles) or a directory."""
    if name in ("llada-8b", "published"):
        return load_profile_set(PUBLISHED_PROFILES_DIR)
    if name == "shipped":
        return load_profile_set(SHIPPED_PROFILES_DIR)
    if not Path(name).is_dir():
        raise ValueError(f"profiles: {name!r} is neither llada-8b, shipped nor a directory")
    return load_profile_set(name)


PLAN_HORIZON_S = 600.0  # how long a plan is expected to hold (prices reloads; assumed)


def solver_policy(profiles: ProfileSet, cluster: Cluster,
                  serving: ServingModel | None = None) -> SolverPolicy:
    """What dilaserve's planner may choose from: TP degrees that fit a node, thresholds up to the
    quality reference (above it buys a tenth of a point for several times the steps), the
    reference block size; reload and drain times from the profiles.

    Reloads are priced at what they cost in capacity: reloading the whole cluster idles it for
    reload + drain seconds out of a plan's expected life (`PLAN_HORIZON_S`), so its weight is
    that fraction of the served tier. The solver's default (1e-5, a tie-break) let it move
    replicas between TP degrees for any small predicted gain, and every move idles GPUs for a
    minute. This puts reconfiguration above accuracy (1e-3): accuracy is what threshold ranges
    adjust, and those are free. `serving`: how the replicas serve (the capacity model's inputs;
    default `ServingModel()`). The layout comes first (`SolverPolicy.layout_first`): a TP layout is
    chosen for the capacity load control can reach, and kept; thresholds follow the load."""
    quality = profiles.quality
    block = profiles.reference_block
    ref = quality.reference.threshold
    taus = tuple(p.threshold for p in quality.threshold_points(block) if p.threshold <= ref)
    widest = max(n.gpus_per_node for n in cluster.nodes)
    reconfig = min(1.0, (profiles.reload_s + profiles.drain_s) / PLAN_HORIZON_S)
    return SolverPolicy(tp_degrees=tuple(t for t in (1, 2, 4, 8) if t <= widest),
                        thresholds=taus, block_sizes=(block,), max_batch=profiles.max_rows,
                        reload_s=profiles.reload_s, drain_s=profiles.drain_s,
                        weights=ObjectiveWeights(reconfig=reconfig),
                        serving=serving or ServingModel(), layout_first=True)
