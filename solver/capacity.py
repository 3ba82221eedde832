"""Capacity of one replica for one SLO class: the highest arrival rate it can take and still meet
the class's deadline with the target attainment. Pure functions of the profiles; no solver here.

Service (batched, lockstep). A request of canvas L (output length rounded up to whole blocks
of size B) decodes ceil(L/B) blocks; each block takes max(1, B / tokens_per_step) steps: one
refresh step (full forward over prompt + canvas) and the rest reuse steps (dual cache: the block
only; prefix cache: block + suffix; no cache: every step is a full forward). A replica running b
such rows in lockstep takes S(b) = sum over steps of predict(step_features(b identical rows)) per
request; S is affine in b. S at the mean lengths sets the throughput, S at the p90 lengths the
latency checked against the deadline.

Queueing (M/D/b, Kingman / Allen-Cunneen). The replica is b servers (batch slots) with
deterministic service time S_mean(b) fed by Poisson arrivals at rate lam. The waiting-time tail is
approximated by the Erlang-C M/M/b tail with its decay rate doubled for deterministic service
((ca^2 + cs^2) / 2 = 1/2):

    P(wait > t) ~= C(b, lam * S_mean) * exp(-2 * (b / S_mean - lam) * t)

which for b = 1 is Kingman's M/D/1 bound rho * exp(-2 (mu - lam) t). A request meets its
deadline D when wait + S_p90(b) <= D, so capacity(b) is the largest lam with
P(wait > D - S_p90(b)) <= 1 - target (found by bisection; the tail grows with lam), and the
replica's capacity is the max over batch sizes b <= max_batch on a grid. Best-effort classes have
no deadline: capacity is best_effort_utilization x b / S_mean(b) at b = max_batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dilaserve.core.steps import Phase, RowShape, query_len, step_features
from dilaserve.profiles.step_cost import StepCostModel
from solver.types import LengthDist

BATCH_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
_BISECT_STEPS = 30


@dataclass(frozen=True)
class CapacityQuery:
    cost: StepCostModel
    cache_mode: str
    prompt: LengthDist
    output: LengthDist
    block_size: int
    tokens_per_step: float
    deadline_s: float | None  # None: best effort
    target: float
    max_batch: int
    best_effort_utilization: float = 0.9


@dataclass(frozen=True)
class Capacity:
    rate: float  # requests/s one replica takes while meeting the deadline at the target
    batch: int  # the batch size that rate is planned at
    service_s: float  # per-request latency at that batch, p90 lengths
    mean_service_s: float  # per-request latency at that batch, mean lengths
    unloaded_s: float  # p90-length latency alone (batch 1)
    reason: str = ""  # why the rate is 0, when it is


def canvas_len(output_len: float, block_size: int) -> int:
    return max(1, math.ceil(output_len / block_size)) * block_size


@lru_cache(maxsize=65536)
def service_affine(cost: StepCostModel, cache_mode: str, prompt_len: int, canvas: int,
                   block_size: int, tokens_per_step: float) -> tuple[float, float]:
    """(s0, s1) with S(b) = s0 + s1 * b: one request's decode time with b identical rows."""
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


def latency(q: CapacityQuery, batch: int, *, tail: bool) -> float:
    """Per-request decode time at `batch` rows, at the p90 (tail) or mean lengths."""
    s0, s1 = _affine(q, tail)
    return s0 + s1 * batch


def _affine(q: CapacityQuery, tail: bool) -> tuple[float, float]:
    prompt = q.prompt.p90 if tail else q.prompt.mean
    out = q.output.p90 if tail else q.output.mean
    return service_affine(q.cost, q.cache_mode, math.ceil(prompt),
                          canvas_len(out, q.block_size), q.block_size, q.tokens_per_step)


def erlang_c(servers: np.ndarray, load: np.ndarray) -> np.ndarray:
    """P(wait > 0) in M/M/c with c = servers and offered load `load` Erlangs (< c)."""
    servers = np.asarray(servers)
    load = np.asarray(load, dtype=float)
    blocking = np.ones(np.broadcast(servers, load).shape)
    for k in range(1, int(np.max(servers)) + 1):  # Erlang-B recurrence, stable
        nxt = load * blocking / (k + load * blocking)
        blocking = np.where(k <= servers, nxt, blocking)
    rho = load / servers
    return blocking / (1 - rho * (1 - blocking))


def wait_tail(rate: float, batch: int, mean_service_s: float, slack_s: float) -> float:
    """P(wait > slack_s) for Poisson arrivals at `rate` on `batch` deterministic slots."""
    if slack_s <= 0:
        return 1.0
    if rate <= 0:
        return 0.0
    mu = batch / mean_service_s
    if rate >= mu:
        return 1.0
    c = float(erlang_c(np.array(batch), np.array(rate * mean_service_s)))
    return min(1.0, c * math.exp(-2 * (mu - rate) * slack_s))


def attainment(cap: Capacity, deadline_s: float, rate: float) -> float:
    """Predicted P(latency <= deadline) for a replica taking `rate` of this class, planned at
    `cap.batch` (the same approximation that produced `cap`)."""
    if cap.rate <= 0:
        return 0.0
    return 1.0 - wait_tail(rate, cap.batch, cap.mean_service_s, deadline_s - cap.service_s)


def replica_capacity(q: CapacityQuery) -> Capacity:
    return capacity_table([q])[0]


def capacity_table(queries: list[CapacityQuery]) -> list[Capacity]:
    """`replica_capacity` for many queries at once (vectorised over queries x batch sizes)."""
    if not queries:
        return []
    top = max(q.max_batch for q in queries)
    grid = np.array(sorted({b for b in BATCH_GRID if b <= top} | {q.max_batch for q in queries}))
    mean = np.array([_affine(q, False) for q in queries])  # (n, 2)
    tail = np.array([_affine(q, True) for q in queries])
    s_mean = mean[:, :1] + mean[:, 1:] * grid  # (n, g)
    s_tail = tail[:, :1] + tail[:, 1:] * grid
    deadline = np.array([q.deadline_s if q.deadline_s is not None else np.inf for q in queries])
    eps = np.array([1.0 - q.target for q in queries])[:, None]
    slack = deadline[:, None] - s_tail
    allowed = grid[None, :] <= np.array([q.max_batch for q in queries])[:, None]
    valid = allowed & (slack > 0) & np.isfinite(slack)
    servers = np.broadcast_to(grid, s_mean.shape)
    lo, hi = np.zeros(s_mean.shape), np.ones(s_mean.shape)
    decay = 2 * servers / s_mean * np.where(valid, slack, 0.0)
    for _ in range(_BISECT_STEPS):
        mid = (lo + hi) / 2
        ok = erlang_c(servers, mid * servers) * np.exp(-decay * (1 - mid)) <= eps
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    rates = np.where(valid, lo * servers / s_mean, 0.0)
    out = []
    for i, q in enumerate(queries):
        unloaded = float(tail[i, 0] + tail[i, 1])
        if q.deadline_s is None:
            j = int(np.nonzero(grid == q.max_batch)[0][0])
            rate = q.best_effort_utilization * grid[j] / s_mean[i, j]
            out.append(Capacity(float(rate), int(grid[j]), float(s_tail[i, j]),
                                float(s_mean[i, j]), unloaded))
            continue
        j = int(np.argmax(rates[i]))
        if rates[i, j] <= 0:
            reason = (f"p90 latency alone {unloaded:.3g} s exceeds the deadline "
                      f"{q.deadline_s:.3g} s" if unloaded >= q.deadline_s else
                      f"cannot reach {q.target:.0%} within {q.deadline_s:.3g} s even at batch 1 "
                      f"(p90 latency alone {unloaded:.3g} s)")
            out.append(Capacity(0.0, 1, unloaded, float(s_mean[i, 0]), unloaded, reason))
            continue
        out.append(Capacity(float(rates[i, j]), int(grid[j]), float(s_tail[i, j]),
                            float(s_mean[i, j]), unloaded))
    return out
