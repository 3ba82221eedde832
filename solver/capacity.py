"""Capacity of one replica for one SLO class: the highest Poisson arrival rate at which the class
still meets its attainment target there. Pure functions of the profiles and the class's length mix.

The replica as a queue (derivation and assumptions in docs/solver.md, "Capacity"):

- **Service.** Continuous batching steps every held row together, so a replica with N requests
  (at most `max_batch` rows held, the rest queued) is a processor-sharing server whose speed
  depends on N: each held row advances one step per S(N) seconds, S the expected step time over
  the class's length mix (padding, the refresh/reuse mix, the step-cost profile:
  `solver.batch_model`). A request needs its steps (blocks x steps per block at the threshold,
  with the per-request spread of tokens per step) plus half a step on average before it joins
  (arrivals wait for the step in flight). The number of requests then follows a birth-death
  chain with departure rate min(N, max_batch) / ((E[steps] + 1/2) S(N)) (processor sharing is
  insensitive to the steps' distribution beyond their mean).
- **Deadlines.** Each request has its own deadline (`deadlines`, one per mix point: SLO scale x
  its time alone, as the requests carry it, or one class-wide figure). The worker's admission
  accepts an arrival only if it is predicted to finish in time (`solver.batch_model.acceptance`);
  an accepted request is counted as met (late and expired ones are rare under admission: < 1% in
  the simulator at capacity), so attainment = the share accepted.
- **Routing.** A refused request is offered to up to `tries` replicas in all (the deadline-aware
  router's fallbacks); replicas are treated as independent, each one's arrivals including the
  retries of the others: a mix point refused with probability q at one replica is lost with
  q^tries. Its arrival rate at each replica is rate x (1 + q + ... + q^(tries-1)).
- **Capacity** is the rate at which the chain's attainment equals the target (on grids of rates
  that narrow around the crossing; the attainment falls as the rate grows). Best-effort classes
  (no deadline): `best_effort_utilization` x the replica's throughput with every row slot held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from dilaserve.core.steps import Phase, RowShape, query_len, step_features
from dilaserve.profiles.step_cost import StepCostModel
from solver.batch_model import Rows, acceptance, alone_s, binomial_table, rows_of, step_seconds
from solver.length_mix import LengthMix
from solver.types import ServingModel

JOIN_STEPS = 0.5  # an arrival waits for the step in flight: half a step on average
_QUEUE_SLOTS = 1.0  # queued requests the chain allows beyond the row slots, x max_batch
_GRID, _GRID_ROUNDS = 16, 4  # rates evaluated at once, rounds of narrowing grids
_PRECISION = 2e-3  # relative, on the capacity
_TOLERANCE = 1e-3  # on the refused shares, where the fixed point stops (capacities move < 0.1%)
_CURVE = (0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2.0)  # extra attainment points, x capacity


@dataclass(frozen=True)
class CapacityQuery:
    cost: StepCostModel
    cache_mode: str
    mix: LengthMix
    block_size: int
    tokens_per_step: float
    deadlines: tuple[float, ...] | None  # per mix point; None: best effort
    target: float
    max_batch: int
    serving: ServingModel = field(default_factory=ServingModel)
    tries: int = 1  # replicas a request may be offered to (1: this replica alone)
    best_effort_utilization: float = 0.9

    def __post_init__(self) -> None:
        if self.deadlines is not None and len(self.deadlines) != len(self.mix):
            raise ValueError(f"capacity query: {len(self.deadlines)} deadlines for a mix of "
                             f"{len(self.mix)} points")


@dataclass(frozen=True)
class Capacity:
    rate: float  # requests/s one replica takes while meeting the target
    batch: float  # mean rows held at that rate
    step_s: float  # mean step time at that rate
    service_s: float  # mean time a request spends held at that rate
    unloaded_s: float  # mean time alone (batch 1) on this configuration
    reason: str = ""  # why the rate is 0, when it is
    curve: tuple[tuple[float, float], ...] = ()  # (rate, predicted attainment), rising rates
    refused: float = 0.0  # share of arrivals refused at capacity (the loss that binds)


def canvas_len(output_len: float, block_size: int) -> int:
    return max(1, math.ceil(output_len / block_size)) * block_size


@lru_cache(maxsize=65536)
def service_affine(cost: StepCostModel, cache_mode: str, prompt_len: int, canvas: int,
                   block_size: int, tokens_per_step: float) -> tuple[float, float]:
    """(s0, s1) with S(b) = s0 + s1 * b: one request's decode time with b identical rows in
    lockstep (what the unloaded latency behind a deadline is: b = 1)."""
    steps_per_block = max(1.0, block_size / tokens_per_step)
    seq = prompt_len + canvas

    def affine(rows_of: list[RowShape]) -> tuple[float, float]:
        one = cost.predict(step_features(rows_of))
        two = cost.predict(step_features(rows_of * 2))  # features are affine in the row count
        return one - (two - one), two - one

    ref0, ref1 = affine([RowShape(seq, seq, Phase.REFRESH)])
    if cache_mode == "none":
        n_blocks = canvas // block_size
        return n_blocks * steps_per_block * ref0, n_blocks * steps_per_block * ref1
    s0 = s1 = 0.0
    for start in range(0, canvas, block_size):
        q = query_len(Phase.REUSE, cache_mode, seq, prompt_len + start,
                      prompt_len + start + block_size)
        r0, r1 = affine([RowShape(seq, q, Phase.REUSE)])
        s0 += ref0 + (steps_per_block - 1) * r0
        s1 += ref1 + (steps_per_block - 1) * r1
        if cache_mode == "dual":  # every block costs the same
            n = canvas // block_size
            return s0 * n, s1 * n
    return s0, s1


class ReplicaQueue:
    """The chain of one query: `attainment(rate)` and the state behind it."""

    def __init__(self, q: CapacityQuery) -> None:
        self.q = q
        serving = q.serving
        self.rows: Rows = rows_of(q.mix, q.block_size, q.tokens_per_step, q.cache_mode,
                                  serving.speed_cv)
        coef = q.cost.coef
        self.slots = q.max_batch
        states = int(q.max_batch * (1 + _QUEUE_SLOTS))
        self.step = step_seconds(coef, self.rows, q.max_batch,
                                 serving.refresh_rows(q.max_batch), q.cache_mode)
        self.alone = alone_s(coef, self.rows, q.cache_mode)
        self.mean_steps = float(np.dot(self.rows.weight, self.rows.steps)) + JOIN_STEPS
        self.accept = None
        if q.deadlines is not None:
            headroom = serving.admission_headroom if serving.admission else 0.0
            accept = acceptance(coef, self.rows, np.asarray(q.deadlines, dtype=float),
                                q.max_batch, states, headroom)
            # nothing is admitted beyond the last state that admits anyone: the chain ends there
            admits = np.nonzero(accept.max(axis=1) > 1e-12)[0]
            states = min(states, int(admits[-1]) + 1) if len(admits) else 1
            self.accept = accept[: states + 1]
        self.states = states
        held = np.minimum(np.arange(states + 1), self.slots)
        self.held = held
        with np.errstate(divide="ignore"):
            self.log_death = np.log(held / (self.mean_steps * np.maximum(self.step[held],
                                                                          1e-300)))
        self.tries = max(1, q.tries)
        self._solved: list[tuple[np.ndarray, np.ndarray]] = []

    def throughput(self, held: int) -> float:
        return held / (self.mean_steps * self.step[held]) if held > 0 else 0.0

    def attainment(self, rate: float) -> float:
        return float(self.solve(np.array([rate]))[0][0])

    def solve(self, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(attainment per rate, the stationary distribution of requests held or queued per
        rate): the chains of all the rates at once (the fixed point on the refused shares runs
        for every rate together, started from the nearest rates solved before)."""
        rates = np.maximum(np.asarray(rates, dtype=float), 0.0)[:, None]
        acc, w = self.accept, self.rows.weight
        refused = self._start(rates[:, 0])
        pi = np.ones((len(rates), self.states + 1))
        for _ in range(200 if self.tries > 1 else 1):
            offered = w * _retries(refused, self.tries)
            if self.q.serving.admission:
                birth = rates * (offered @ acc.T)
            else:
                birth = rates * offered.sum(axis=1, keepdims=True) * np.ones(len(acc))
            steps = np.log(np.maximum(birth[:, :-1], 1e-300)) - self.log_death[None, 1:]
            log_pi = np.concatenate([np.zeros((len(rates), 1)), np.cumsum(steps, axis=1)], axis=1)
            pi = np.exp(log_pi - log_pi.max(axis=1, keepdims=True))
            pi /= pi.sum(axis=1, keepdims=True)
            new = pi @ (1.0 - acc)
            done = np.max(np.abs(new - refused)) < _TOLERANCE
            refused = new
            if done:
                break
        self._solved.append((rates[:, 0], refused))
        return (1.0 - refused**self.tries) @ w, pi

    def _start(self, rates: np.ndarray) -> np.ndarray:
        if not self._solved or self.tries == 1:
            return np.zeros((len(rates), len(self.rows.weight)))
        known = np.concatenate([r for r, _ in self._solved])
        shares = np.concatenate([q for _, q in self._solved])
        order = np.argsort(known)
        nearest = np.clip(np.searchsorted(known[order], rates), 0, len(known) - 1)
        return shares[order][nearest]


def clear_cache() -> None:
    """Forget computed capacities (a benchmark's cold start)."""
    _capacity.cache_clear()
    service_affine.cache_clear()
    binomial_table.cache_clear()


def _retries(refused: np.ndarray, tries: int) -> np.ndarray:
    """1 + q + ... + q^(tries - 1): how many times a request is offered, per refused share q."""
    out = np.ones_like(refused)
    for _ in range(tries - 1):
        out = 1.0 + refused * out
    return out


def replica_capacity(q: CapacityQuery) -> Capacity:
    return _capacity(q)


def capacity_table(queries: list[CapacityQuery]) -> list[Capacity]:
    """`replica_capacity` for many queries (each cached: plans made for the same load share
    them)."""
    return [_capacity(q) for q in queries]


def attainment(cap: Capacity, rate: float) -> float:
    """Predicted attainment of a replica taking `rate` of the class (interpolated on the curve
    the capacity was found on)."""
    if cap.rate <= 0 or not cap.curve:
        return 0.0
    rates = [r for r, _ in cap.curve]
    values = [a for _, a in cap.curve]
    return float(np.interp(rate, rates, values))


@lru_cache(maxsize=4096)
def _capacity(q: CapacityQuery) -> Capacity:
    chain = ReplicaQueue(q)
    unloaded = float(np.dot(q.mix.weight, chain.alone))
    peak = max(chain.throughput(r) for r in range(1, q.max_batch + 1))
    if q.deadlines is None:
        full = chain.throughput(q.max_batch)
        rate = q.best_effort_utilization * full
        return Capacity(rate, float(q.max_batch), float(chain.step[q.max_batch]),
                        chain.mean_steps * float(chain.step[q.max_batch]), unloaded,
                        curve=((0.0, 1.0), (rate, 1.0)))
    alone_ok = float(np.dot(q.mix.weight, chain.accept[0]))
    if alone_ok < q.target:
        return Capacity(0.0, 1.0, float(chain.step[1]), chain.mean_steps * float(chain.step[1]),
                        unloaded, reason=_zero_reason(q, alone_ok, unloaded))
    # accepted throughput never exceeds the peak, so beyond peak / target the share accepted
    # is below the target: a grid over (0, that], then a finer grid where it crosses the target
    lo, hi = 0.0, peak / q.target * 1.001
    points: dict[float, float] = {0.0: 1.0}
    for _ in range(_GRID_ROUNDS):
        grid = np.linspace(lo, hi, _GRID + 2)[1:]
        values, _ = chain.solve(grid)
        points.update(zip(grid.tolist(), values.tolist()))
        above = np.nonzero(values >= q.target)[0]
        if len(above) == 0:
            hi = float(grid[0])
            continue
        last = int(above[-1])
        lo, hi = float(grid[last]), float(grid[min(last + 1, len(grid) - 1)])
        if hi - lo < _PRECISION * hi:
            break
    rate = lo
    if rate <= 0:
        return Capacity(0.0, 1.0, float(chain.step[1]), chain.mean_steps * float(chain.step[1]),
                        unloaded, reason=f"the attainment stays below {q.target:.0%} at any rate")
    att, pi = chain.solve(np.array([rate, *(f * rate for f in _CURVE)]))
    points.update(zip((rate * np.array([1.0, *_CURVE])).tolist(), att.tolist()))
    held = float(np.dot(pi[0], chain.held))
    step = float(np.dot(pi[0], chain.step[chain.held]))
    curve = tuple(sorted(points.items()))
    return Capacity(float(rate), held, step, chain.mean_steps * step, unloaded, curve=curve,
                    refused=1.0 - float(att[0]))


def _zero_reason(q: CapacityQuery, alone_ok: float, unloaded: float) -> str:
    deadlines = np.asarray(q.deadlines)
    return (f"only {alone_ok:.0%} of the class's requests would be admitted even alone (their "
            f"time alone, {unloaded:.3g} s on average, x {1 + q.serving.admission_headroom:g} "
            f"against deadlines of {float(np.dot(q.mix.weight, deadlines)):.3g} s on average); "
            f"the target is {q.target:.0%}")
