"""A GenerateRequest as the router takes it: checked with the worker's own checks
(`worker.service.validation`) against the request limits its replicas report, its SLO deadline
fixed at arrival by the worker's rule, and the `RouteRequest` the pure router decides on.

The router counts the prompt in the model's tokens with the model's own tokenizer (and chat
template) and forwards the request as it came: the replica tokenizes it again and is the
authority on what it runs (docs/router.md, "Who tokenizes"); the two counts are compared on every
final message. Decode settings are left to the worker, whose INVALID_ARGUMENT the router passes
on; so is everything before the router has heard its replicas' limits."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dilaserve.core.limits import RequestLimits
from dilaserve.core.tokenizer import Tokenizer
from dilaserve.policy import Policy, SloClass
from orchestrator.load import Arrival
from orchestrator.types import RouteRequest
from proto import dilaserve_pb2 as pb
from worker.service.validation import (
    block_size_of,
    canvas_of,
    check_context,
    priority_of,
    prompt_field,
    prompt_ids_of,
    relative_deadline_s,
    request_id_of,
    slo_class_of,
)


@dataclass(frozen=True)
class RoutedRequest:
    """A request accepted for routing, with the settings it arrived under (a policy reload later
    does not change them)."""

    request: pb.GenerateRequest  # a copy, with its request id and class filled in
    slo: SloClass
    arrival_s: float
    deadline_s: float  # absolute, on the router's clock (inf: none)
    route: RouteRequest
    counted: bool  # the prompt was counted in the model's tokens (else estimated from its text)
    # of the time since arrival_s, how long it waited before the router's handler ran (the
    # router's estimate, `loop_lag`): arrival_s is when it reached the server's transport
    waited_s: float = 0.0

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def prompt_len(self) -> int:
        return self.route.prompt_len

    @property
    def relative_deadline_ms(self) -> float:
        """The SLO deadline relative to arrival in ms (0: none, as Final.deadline_ms)."""
        span = self.deadline_s - self.arrival_s
        return span * 1e3 if math.isfinite(span) else 0.0

    def arrival(self) -> Arrival:
        return Arrival(self.arrival_s, self.slo.name, self.route.prompt_len, self.route.canvas_len)

    def upstream(self, now: float) -> pb.GenerateRequest:
        """The request for a worker at `now`: the time left of the SLO deadline as deadline_ms.
        (The router's own copy, updated in place: one attempt at a time sends it.)"""
        if math.isfinite(self.deadline_s):
            # a passed deadline still goes as a tiny positive one: the worker applies its rule
            self.request.deadline_ms = max((self.deadline_s - now) * 1e3, 1e-3)
        return self.request


def prepare(request: pb.GenerateRequest, policy: Policy, tokenizer: Tokenizer | None,
            limits: RequestLimits | None, arrival_s: float,
            grpc_remaining_s: float | None, waited_s: float = 0.0) -> RoutedRequest:
    """Raises InvalidRequest naming the field. `limits`: the replicas' (None before any
    reported: the policy's max_new_tokens is checked, the rest is left to the worker).
    `arrival_s`: when it reached the server's transport, `waited_s` before its handler ran,
    when `grpc_remaining_s` (the time left of the call's gRPC deadline) was read."""
    request_id = request_id_of(request.request_id)
    prompt_len, counted = _prompt_len(request, tokenizer, limits)
    slo = slo_class_of(policy, request.slo_class)
    block = block_size_of(request.quality, policy, limits)
    canvas = canvas_of(request.max_new_tokens, block, limits, policy)
    check_context(prompt_len if counted else 0, canvas, request.max_new_tokens, block, limits)
    if grpc_remaining_s is not None:  # gRPC's own clock ran from the transport too
        grpc_remaining_s += waited_s
    relative = relative_deadline_s(request, slo, grpc_remaining_s)
    forwarded = pb.GenerateRequest()
    forwarded.CopyFrom(request)
    forwarded.request_id = request_id
    forwarded.slo_class = slo.name
    deadline = arrival_s + relative
    route = RouteRequest(request_id, slo.name, prompt_len, canvas, arrival_s, deadline,
                         priority_of(request, slo))
    return RoutedRequest(forwarded, slo, arrival_s, deadline, route, counted, waited_s)


def _prompt_len(request: pb.GenerateRequest, tokenizer: Tokenizer | None,
                limits: RequestLimits | None) -> tuple[int, bool]:
    """The prompt's length in tokens and whether it was counted (with the model's tokenizer or
    as ids); without a tokenizer a text prompt's length is estimated from its characters."""
    field = prompt_field(request)
    if tokenizer is None and field != "prompt_ids":
        text = request.prompt_text if field == "prompt_text" else "".join(
            m.content for m in request.messages)
        return max(1, len(text)), False  # an estimate for routing; the worker tokenizes
    return len(prompt_ids_of(request, tokenizer, limits)), True
