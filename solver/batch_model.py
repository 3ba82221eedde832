"""What one replica's batch costs, in expectation over a class's length mix (pure numpy).

The simulator and the engine run a step as one padded refresh forward over the rows at a block
start and one padded reuse forward over the rest (`dilaserve.core.steps.step_features`). The
step-cost model is linear in the step's features: `a` per forward, `b` per refresh query token,
`c` per reuse query token, `d` per attended (query x key) pair. With r rows drawn from the rows a
replica holds, k of them refreshing:

    S(r) = E_k[ a + b k Lmax(k) + d k Lmax(k) (Lmax(k) + 1)            (refresh forward, k > 0)
              + a + c u q + d u q (Lmax(u) + 1) ]                       (reuse forward, u = r - k)

where Lmax(k) is the longest of k rows (the forward is padded to it), q the reuse query (the
block with a dual cache, the suffix with a prefix cache), k ~ Binomial(r, refresh share) capped
at the scheduler's refresh bound. A replica holds a request for its steps, so the rows it holds
are the mix weighted by steps (long canvases are over-represented), and Lmax(k) is the expected
maximum of k draws from that residence mix. Time alone (`alone_s`) is the same sum at r = 1 with
the profile's tokens per step: it reproduces `solver.capacity.service_affine` (tested).

Admission (`acceptance`) is modelled on the worker's rule (`worker.scheduler.admission`): an
arrival is accepted when (wait + its steps) x the predicted step time x (1 + headroom) fits its
deadline, the predicted step time being the predictor's (`BatchShape`): every row's expected
refresh share, each forward padded to the longest row the replica holds (its own included).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from solver.length_mix import LengthMix


@dataclass(frozen=True)
class Rows:
    """Per mix point: the arrays the model works on."""

    seq: np.ndarray  # prompt + canvas: what a refresh forward queries and every row attends to
    steps: np.ndarray  # mean steps, with the per-request spread of tokens per step
    steps_nominal: np.ndarray  # the steps the scheduler predicts (the profile's tokens per step)
    weight: np.ndarray  # share of arrivals
    reuse_query: np.ndarray  # tokens a reuse step queries
    refresh_share: float  # share of a held row's steps that refresh (1 without a cache)
    nominal_share: float  # the same as the scheduler's predictor counts it
    per_block: float  # nominal steps per block

    @property
    def resident(self) -> np.ndarray:
        """Share of the rows a replica holds, per mix point (arrivals weighted by steps)."""
        held = self.weight * self.steps
        return held / held.sum()


def rows_of(mix: LengthMix, block: int, tokens_per_step: float, cache_mode: str,
            speed_cv: float) -> Rows:
    prompt, canvas, weight = mix.arrays()
    blocks = canvas / block
    per_block = max(1.0, block / tokens_per_step)
    # a request's tokens per step is the profile's x a lognormal speed factor of mean 1, so its
    # steps per block are the profile's x E[1 / speed] = 1 + cv^2 (never fewer than one)
    spread = max(1.0, per_block * (1.0 + speed_cv * speed_cv))
    if cache_mode == "prefix":  # the suffix from the block start, on average over the blocks
        query = (canvas + block) / 2
    else:
        query = np.full_like(canvas, float(block))
    share = 1.0 if cache_mode == "none" else 1.0 / spread
    nominal = 1.0 if cache_mode == "none" else 1.0 / per_block
    return Rows(prompt + canvas, blocks * spread, blocks * per_block, weight, query, share,
                nominal, per_block)


def alone_s(coef: tuple[float, ...], rows: Rows, cache_mode: str) -> np.ndarray:
    """Seconds each mix point takes alone (batch 1, nominal steps): its blocks x (one refresh
    + the rest reuse steps), every step a full forward without a cache."""
    a, b, c, d = coef
    seq = rows.seq
    refresh = a + b * seq + d * seq * (seq + 1)
    blocks = rows.steps_nominal / rows.per_block
    if cache_mode == "none":
        return rows.steps_nominal * refresh
    q = rows.reuse_query
    reuse = a + c * q + d * q * (seq + 1)
    return blocks * (refresh + (rows.per_block - 1) * reuse)


def max_moments(values: np.ndarray, probs: np.ndarray, kmax: int,
                ) -> tuple[np.ndarray, np.ndarray]:
    """(E[max of k draws], E[M (M + 1)] for M that max) for k = 0..kmax (0 at k = 0)."""
    order = np.argsort(values, kind="stable")
    v, p = values[order], probs[order] / probs.sum()
    cdf = np.minimum(1.0, np.cumsum(p))
    k = np.arange(kmax + 1)[:, None]
    powers = cdf[None, :] ** k
    pmf = np.diff(np.concatenate([np.zeros((kmax + 1, 1)), powers], axis=1), axis=1)
    pmf[0] = 0.0
    return pmf @ v, pmf @ (v * (v + 1))


@lru_cache(maxsize=256)
def binomial_table(n: int, p: float) -> np.ndarray:
    """[r, k] = P(k of r rows), r, k = 0..n (cached: read only)."""
    table = np.zeros((n + 1, n + 1))
    table[0, 0] = 1.0
    for r in range(1, n + 1):
        table[r, : r + 1] = table[r - 1, : r + 1] * (1 - p)
        table[r, 1 : r + 1] += table[r - 1, :r] * p
    return table


def step_seconds(coef: tuple[float, ...], rows: Rows, max_rows: int, refresh_cap: int,
                 cache_mode: str) -> np.ndarray:
    """S[r]: expected seconds of a step with r held rows, r = 0..max_rows."""
    a, b, c, d = coef
    held = rows.resident
    seq1, seq2 = max_moments(rows.seq, held, max_rows)
    k = np.arange(max_rows + 1)
    if cache_mode == "none":  # every row refreshes every step, unbounded
        out = a + b * k * seq1 + d * k * seq2
        out[0] = 0.0
        return out
    capped = np.minimum(k, refresh_cap)
    refresh = np.where(capped > 0, a + b * capped * seq1[capped] + d * capped * seq2[capped], 0.0)
    if cache_mode == "prefix":
        query, _ = max_moments(rows.reuse_query, held, max_rows)
    else:
        query = np.full(max_rows + 1, float(rows.reuse_query[0]))
    reuse = np.where(k > 0, a + c * k * query + d * k * query * (seq1 + 1), 0.0)
    table = binomial_table(max_rows, rows.refresh_share)
    u = k[:, None] - k[None, :]  # [r, k]: reuse rows when k of r refresh
    reuse_rk = np.where(u >= 0, reuse[np.clip(u, 0, max_rows)], 0.0)
    return (table * (refresh[None, :] + reuse_rk)).sum(axis=1)


def acceptance(coef: tuple[float, ...], rows: Rows, deadlines: np.ndarray, max_rows: int,
               states: int, headroom: float) -> np.ndarray:
    """[N, i]: the chance the worker's admission accepts an arrival of mix point i when it
    already has N requests (N = 0..states); beyond max_rows the arrival waits for a slot, about
    (N + 1 - max_rows) mean residual lives over the slots."""
    a, b, c, d = coef
    p = rows.nominal_share
    q = float(np.dot(rows.reuse_query, rows.resident))
    held = rows.resident
    order = np.argsort(rows.seq, kind="stable")
    seq_sorted, cdf = rows.seq[order], np.minimum(1.0, np.cumsum(held[order]))
    residual = float(np.dot(held, rows.steps_nominal)) / 2
    n_now = np.arange(states + 1)[:, None]
    n = np.minimum(max_rows, n_now + 1).astype(float)
    wait = np.maximum(0, n_now + 1 - max_rows) * residual / max_rows
    budget = deadlines[None, :] / ((wait + rows.steps_nominal[None, :]) * (1.0 + headroom))
    forwards = (1 - p**n) + (1 - (1 - p) ** n) if p < 1 else np.ones_like(n)
    # predicted step <= budget, a quadratic in the longest row L: A L^2 + B L + C <= 0
    qa = d * n * p
    qb = b * n * p + d * n * p + d * n * (1 - p) * q
    qc = a * forwards + c * n * (1 - p) * q + d * n * (1 - p) * q - budget
    root = np.sqrt(np.maximum(qb * qb - 4 * qa * qc, 0.0))
    longest = np.where(qc <= 0, 2 * -qc / np.maximum(qb + root, 1e-300), -1.0)
    fits = np.searchsorted(seq_sorted, longest, side="right")
    below = np.where(fits > 0, cdf[np.maximum(fits - 1, 0)], 0.0)
    return (rows.seq[None, :] <= longest) * below ** np.minimum(n_now, max_rows)
