"""Building requests and reading results, shared by the sync and async clients."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from dilaserve.core.results import FinalResult
from dilaserve.core.tokenizer import ChatMessage
from proto import dilaserve_pb2 as pb
from proto import finish

# a prompt: text, token ids, or a chat (ChatMessage or {"role": ..., "content": ...} items)
Prompt = str | Sequence[int] | Sequence[ChatMessage] | Sequence[dict]



class WorkerError(RuntimeError):
    """A call that ended with a gRPC status instead of a final message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details

    @classmethod
    def from_rpc(cls, err: grpc.RpcError) -> WorkerError:
        return cls(err.code(), err.details() or "")

    @classmethod
    def no_final(cls) -> WorkerError:
        return cls(grpc.StatusCode.UNKNOWN, "the stream ended without a final message")


@dataclass(frozen=True)
class Generation(FinalResult):
    """A request's final message as the worker's loop made it, with what only the stream tells:
    the partials streamed before it, the router's restarts, and the replica that served it."""

    partials: tuple[pb.Partial, ...] = ()  # since the last restart
    replica: str = ""  # who served it (see Final.replica)
    restarts: tuple[pb.Restarted, ...] = ()  # the router's restarts on another replica
    replica_e2e_ms: float = 0.0  # inside the replica that served it (see Timings)

    @classmethod
    def from_final(
        cls,
        final: pb.Final,
        partials: Sequence[pb.Partial] = (),
        restarts: Sequence[pb.Restarted] = (),
    ) -> Generation:
        reason = finish.FROM_PB.get(final.finish_reason)
        if reason is None:
            raise WorkerError(grpc.StatusCode.UNKNOWN,
                              f"a final message without a finish reason ({final.finish_reason})")
        t = final.timings
        return cls(
            request_id=final.request_id,
            text=final.text,
            token_ids=tuple(final.token_ids),
            finish_reason=reason,
            deadline_met=final.deadline_met,
            queued_ms=t.queued_ms,
            first_block_ms=t.first_block_ms,
            e2e_ms=t.e2e_ms,
            threshold_start=final.threshold_start,
            threshold_min=final.threshold_min,
            threshold_mean=final.threshold_mean,
            forwards=final.forwards,
            block_size=final.block_size,
            slo_class=final.slo_class,
            deadline_s=final.deadline_ms / 1e3 if final.deadline_ms > 0 else math.inf,
            prompt_tokens=final.prompt_tokens,
            partials=tuple(partials),
            replica=final.replica,
            replica_e2e_ms=t.replica_e2e_ms,
            restarts=tuple(restarts),
        )


class StreamReader:
    """A Generate stream's messages, read into a `Generation` (the sync and async clients share
    it): partials since the last restart, every restart, then the final message."""

    def __init__(self) -> None:
        self.partials: list[pb.Partial] = []
        self.restarts: list[pb.Restarted] = []

    def take(self, message: pb.GenerateResponse) -> Generation | None:
        """The Generation once `message` is the final one; None before."""
        if message.HasField("partial"):
            self.partials.append(message.partial)
        elif message.HasField("restarted"):  # the blocks start again from 0
            self.partials.clear()
            self.restarts.append(message.restarted)
        else:
            return Generation.from_final(message.final, self.partials, self.restarts)
        return None


def generate_request(
    prompt: Prompt,
    max_new_tokens: int = 32,
    *,
    deadline_ms: float | None = None,
    slo_class: str = "",
    min_threshold: float | None = None,
    threshold: float | None = None,
    block_size: int | None = None,
    min_block_size: int | None = None,
    max_block_size: int | None = None,
    commit_rule: str = "",
    rule_param: float | None = None,
    temperature: float = 0.0,
    seed: int = 0,
    request_id: str = "",
    priority: int | None = None,
) -> pb.GenerateRequest:
    """A GenerateRequest; `prompt` is text, token ids or chat messages. None leaves a field
    unset (its default)."""
    quality = pb.QualityBounds()
    for name, value in (
        ("min_threshold", min_threshold),
        ("threshold", threshold),
        ("block_size", block_size),
        ("min_block_size", min_block_size),
        ("max_block_size", max_block_size),
    ):
        if value is not None:
            setattr(quality, name, value)
    request = pb.GenerateRequest(
        request_id=request_id,
        max_new_tokens=max_new_tokens,
        slo_class=slo_class,
        quality=quality,
        commit_rule=commit_rule,
        temperature=temperature,
        seed=seed,
    )
    if isinstance(prompt, str):
        request.prompt_text = prompt
    elif prompt and isinstance(prompt[0], ChatMessage | dict):
        for m in prompt:
            m = m if isinstance(m, ChatMessage) else ChatMessage(m["role"], m["content"])
            request.messages.add(role=m.role, content=m.content)
    else:
        request.prompt_ids.extend(prompt)
    if deadline_ms is not None:
        request.deadline_ms = deadline_ms
    if rule_param is not None:
        request.rule_param = rule_param
    if priority is not None:
        request.priority = priority
    return request


def control_request(
    threshold_range: tuple[float, float] | None = None,
    drain: bool | None = None,
    replica_id: int | None = None,
) -> pb.ControlRequest:
    """`replica_id`: which replica, when the target is the router (a worker ignores it)."""
    request = pb.ControlRequest()
    if threshold_range is not None:
        request.threshold_range.CopyFrom(
            pb.ThresholdRange(min=threshold_range[0], max=threshold_range[1])
        )
    if drain is not None:
        request.drain = drain
    if replica_id is not None:
        request.replica_id = replica_id
    return request
