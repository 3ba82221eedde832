"""Between the loop's plain results and the proto messages (and status codes) of the API."""

from __future__ import annotations

import math

import grpc

from dilaserve.core.limits import RequestLimits
from dilaserve.policy import ThresholdRange
from proto import dilaserve_pb2 as pb
from proto import finish
from worker.service.events import Failure, FinalResult, LoopStats, PartialResult

STATUS = {
    Failure.REJECTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Failure.EXPIRED: grpc.StatusCode.DEADLINE_EXCEEDED,
    Failure.DUPLICATE: grpc.StatusCode.ALREADY_EXISTS,
    Failure.ENGINE_ERROR: grpc.StatusCode.INTERNAL,
    Failure.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


def wire_ms(seconds: float) -> float:
    """A relative deadline as the API writes it: milliseconds, 0 for none."""
    return seconds * 1e3 if math.isfinite(seconds) else 0.0


def partial_message(p: PartialResult) -> pb.GenerateResponse:
    return pb.GenerateResponse(
        partial=pb.Partial(
            request_id=p.request_id,
            block_index=p.block_index,
            token_ids=p.token_ids,
            text=p.text,
            elapsed_ms=p.elapsed_ms,
            threshold=p.threshold,
        )
    )


def final_message(f: FinalResult, replica: str = "") -> pb.GenerateResponse:
    return pb.GenerateResponse(
        final=pb.Final(
            request_id=f.request_id,
            text=f.text,
            token_ids=f.token_ids,
            finish_reason=finish.TO_PB[f.finish_reason],
            deadline_met=f.deadline_met,
            timings=pb.Timings(
                queued_ms=f.queued_ms, first_block_ms=f.first_block_ms, e2e_ms=f.e2e_ms,
                replica_e2e_ms=f.e2e_ms,
            ),
            threshold_start=f.threshold_start,
            threshold_min=f.threshold_min,
            threshold_mean=f.threshold_mean,
            forwards=f.forwards,
            block_size=f.block_size,
            slo_class=f.slo_class,
            deadline_ms=wire_ms(f.deadline_s),
            replica=replica,
            prompt_tokens=f.prompt_tokens,
        )
    )


def stats_message(
    s: LoopStats,
    model: str,
    uptime_s: float,
    draining: bool,
    replica: ThresholdRange,
    tokens_per_step: float,
    block_size: int,
    limits: RequestLimits,
) -> pb.StatsReply:
    return pb.StatsReply(
        model=model,
        uptime_s=uptime_s,
        queued=s.queued,
        running=s.running,
        max_rows=s.max_rows,
        draining=draining,
        min_threshold=replica.min,
        max_threshold=replica.max,
        accepted=s.accepted,
        rejected=s.rejected,
        finished=s.finished,
        deadline_met=s.deadline_met,
        expired=s.expired,
        cancelled=s.cancelled,
        failed=s.failed,
        attainment=s.attainment,
        classes=[
            pb.ClassStats(
                name=c.name,
                ended=c.ended,
                met=c.met,
                attainment=c.attainment,
                target_attainment=c.target_attainment,
            )
            for c in s.classes
        ],
        predicted_step_ms=s.predicted_step_ms,
        predicted_drain_ms=s.predicted_drain_ms,
        load=(s.queued + s.running) / s.max_rows,
        step_cost_error=s.step_cost_error,
        step_cost_samples=s.step_cost_samples,
        step_cost_coef=s.step_cost_coef,
        step_cost_prior_error=s.step_cost_prior_error,
        median_step_ms=s.median_step_ms,
        steps=s.steps,
        step_seconds=s.step_seconds,
        busy_seconds=s.busy_seconds,
        step_prior_seconds=s.step_prior_seconds,
        machine_scale=s.machine_scale,
        machine_scale_measured=s.machine_scale_measured,
        backlog_steps=s.backlog_steps,
        tokens_per_step=tokens_per_step,
        block_size=block_size,
        limits=limits_message(limits),
    )


def limits_message(limits: RequestLimits) -> pb.RequestLimits:
    return pb.RequestLimits(
        max_new_tokens=limits.max_new_tokens, max_block_size=limits.max_block_size,
        context_tokens=limits.context_tokens, vocab_size=limits.vocab_size,
        mask_token_id=limits.mask_token_id)


def limits_of(stats: pb.StatsReply) -> RequestLimits | None:
    """A worker's limits from its Stats (None from a worker that does not report them)."""
    if not stats.HasField("limits"):
        return None
    m = stats.limits
    return RequestLimits(m.max_new_tokens, m.max_block_size, m.context_tokens, m.vocab_size,
                         m.mask_token_id)
