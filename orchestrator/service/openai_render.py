"""What the OpenAI-compatible API sends back: completions, chat completions, their streamed chunks
and OpenAI's error JSON, from the router's messages (`pb.Final`, `pb.Partial`) and statuses.

Every answer carries dilaserve's own account of the request under `dilaserve` (the SLO class and
deadline that applied, whether it was met, the replica, timings, thresholds): the non-streamed
body has it at the top, a stream in the chunk that carries the finish reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from orchestrator.service.overload import RETRY_AFTER_S
from proto import dilaserve_pb2 as pb

FINISH_REASONS = {pb.FINISH_REASON_EOS: "stop", pb.FINISH_REASON_LENGTH: "length"}

# gRPC status -> HTTP status, OpenAI error type
STATUSES: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.NOT_FOUND: (404, "invalid_request_error"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "invalid_request_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable_error"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout_error"),
}
SERVER_ERROR = (500, "server_error")


@dataclass(frozen=True)
class ApiError:
    """One error as the API reports it (the status, and OpenAI's error JSON)."""

    status: int
    message: str
    type: str
    param: str | None = None
    code: str | None = None

    @classmethod
    def of(cls, code: grpc.StatusCode, details: str, param: str | None = None) -> ApiError:
        status, kind = STATUSES.get(code, SERVER_ERROR)
        return cls(status, details or code.name.lower(), kind, param, code.name.lower())

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(RETRY_AFTER_S)} if self.status == 429 else {}


@dataclass(frozen=True)
class Answer:
    """What one response's messages share: which endpoint, the request's id, the model."""

    chat: bool
    request_id: str
    model: str
    created: int  # unix seconds

    @property
    def id(self) -> str:
        return f"{'chatcmpl' if self.chat else 'cmpl'}-{self.request_id}"

    def whole(self, final: pb.Final) -> dict:
        """The non-streamed response."""
        finish = FINISH_REASONS.get(final.finish_reason, "stop")
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": final.text},
                      "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": final.text, "finish_reason": finish, "logprobs": None}
        return {**self._head("chat.completion" if self.chat else "text_completion"),
                "choices": [choice], "usage": usage(final), "dilaserve": account(final)}

    def chunk(self, text: str, first: bool, with_usage: bool) -> dict:
        """One committed block's new text."""
        if self.chat:
            delta = {"role": "assistant", "content": text} if first else {"content": text}
            choice = {"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}
        else:
            choice = {"index": 0, "text": text, "finish_reason": None, "logprobs": None}
        return self._chunk([choice], with_usage)

    def finish_chunk(self, final: pb.Final, first: bool, with_usage: bool) -> dict:
        finish = FINISH_REASONS.get(final.finish_reason, "stop")
        if self.chat:
            delta = {"role": "assistant", "content": ""} if first else {}
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": "", "finish_reason": finish, "logprobs": None}
        return {**self._chunk([choice], with_usage), "dilaserve": account(final)}

    def usage_chunk(self, final: pb.Final) -> dict:
        """OpenAI's last chunk when stream_options.include_usage: no choices, the usage."""
        return {**self._chunk([], False), "usage": usage(final)}

    def _chunk(self, choices: list, with_usage: bool) -> dict:
        head = self._head("chat.completion.chunk" if self.chat else "text_completion")
        return {**head, "choices": choices, **({"usage": None} if with_usage else {})}

    def _head(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def usage(final: pb.Final) -> dict:
    """Tokens as the model counts them: the prompt after the chat template, the answer to EOS."""
    completion = len(final.token_ids)
    return {"prompt_tokens": final.prompt_tokens, "completion_tokens": completion,
            "total_tokens": final.prompt_tokens + completion}


def account(final: pb.Final) -> dict:
    t = final.timings
    return {
        "request_id": final.request_id, "slo_class": final.slo_class,
        "deadline_ms": final.deadline_ms, "deadline_met": final.deadline_met,
        "replica": final.replica, "queued_ms": t.queued_ms, "first_block_ms": t.first_block_ms,
        "e2e_ms": t.e2e_ms, "threshold_start": final.threshold_start,
        "threshold_min": final.threshold_min, "threshold_mean": final.threshold_mean,
        "forwards": final.forwards, "block_size": final.block_size,
    }
