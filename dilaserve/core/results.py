"""A request's result, one record from the worker's loop to the client's hands.

The worker's loop builds it (`worker.service.tracking`), the servicer writes it as the proto's
`Final` message, and a client reads that message back into a `Generation`, which is this record
plus what only the stream tells (partials, restarts, the replica that served it).
"""

from __future__ import annotations

from dataclasses import dataclass

from dilaserve.core.steps import FinishReason


@dataclass(frozen=True)
class FinalResult:
    request_id: str
    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    deadline_met: bool
    queued_ms: float
    first_block_ms: float
    e2e_ms: float
    threshold_start: float
    threshold_min: float
    threshold_mean: float
    forwards: int
    block_size: int
    slo_class: str
    deadline_s: float  # arrival to the SLO deadline; inf: none (the proto writes 0)
    prompt_tokens: int
