"""A replica's step time as the router's load model uses it: `step_base_s + rows * row_step_s`.

From the step-cost model's coefficients (t = a*forwards + b*refresh_tokens + c*reuse_tokens +
d*attended_kv) and a typical row: a step runs up to two forwards (refresh and reuse), and a row
refreshes on one step per block (block / tokens-per-step steps), so its cost per step is that mix
of a full forward over its sequence and a reuse forward over its block (its suffix too with the
prefix cache; the whole sequence with no cache). The simulator's replicas and the gRPC router
both build their ReplicaView from this one function.
"""

from __future__ import annotations


def step_time_model(
    coef: tuple[float, float, float, float] | list[float],
    block_size: int,
    tokens_per_step: float,
    seq_len: float,
    cache_mode: str,
) -> tuple[float, float]:
    """(step_base_s, row_step_s) for rows of `seq_len` tokens decoding at `tokens_per_step`."""
    a, b, c, d = coef
    refresh = min(1.0, tokens_per_step / block_size)
    query = seq_len if cache_mode == "none" else block_size
    row = (refresh * (b * seq_len + d * seq_len * (seq_len + 1))
           + (1.0 - refresh) * (c * query + d * query * (seq_len + 1)))
    return 2.0 * a, row
