"""A GenerateRequest as the router takes it: checked with the worker's own policy-only checks
(`worker.service.validation`), its SLO deadline fixed at arrival by the worker's rule, and the
`RouteRequest` the pure router decides on. What only the model can check (token ids against the
vocabulary, lengths against its limits, decode settings) is left to the worker, whose
INVALID_ARGUMENT the router passes on."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dilaserve.core.tokenizer import Tokenizer
from dilaserve.policy import Policy, SloClass
from orchestrator.load import Arrival
from orchestrator.types import RouteRequest
from proto import dilaserve_pb2 as pb
from worker.service.validation import (
    InvalidRequest,
    block_size_of,
    canvas_of,
    check_prompt_source,
    relative_deadline_s,
    request_id_of,
    slo_class_of,
)

NO_LIMIT = 1 << 30  # lengths the router cannot check (the model's limits): the worker checks


@dataclass(frozen=True)
class RoutedRequest:
    """A request accepted for routing, with the settings it arrived under (a policy reload later
    does not change them)."""

    request: pb.GenerateRequest  # a copy, with its request id and class filled in
    slo: SloClass
    arrival_s: float
    deadline_s: float  # absolute, on the router's clock (inf: none)
    route: RouteRequest

    @property
    def request_id(self) -> str:
        return self.request.request_id

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
            arrival_s: float, grpc_remaining_s: float | None) -> RoutedRequest:
    """Raises InvalidRequest naming the field."""
    request_id = request_id_of(request.request_id)
    prompt_len = _prompt_len(request, tokenizer)
    slo = slo_class_of(policy, request.slo_class)
    block = block_size_of(request.quality, policy, NO_LIMIT)
    canvas = canvas_of(request.max_new_tokens, block, policy)
    relative = relative_deadline_s(request, slo, grpc_remaining_s)
    forwarded = pb.GenerateRequest()
    forwarded.CopyFrom(request)
    forwarded.request_id = request_id
    forwarded.slo_class = slo.name
    deadline = arrival_s + relative
    route = RouteRequest(request_id, slo.name, prompt_len, canvas, arrival_s, deadline)
    return RoutedRequest(forwarded, slo, arrival_s, deadline, route)


def _prompt_len(request: pb.GenerateRequest, tokenizer: Tokenizer | None) -> int:
    check_prompt_source(request)
    if request.prompt_ids:
        return len(request.prompt_ids)
    if tokenizer is None:
        return len(request.prompt_text)  # an estimate for routing; the worker tokenizes
    try:
        return len(tokenizer.encode(request.prompt_text))
    except ValueError as err:
        raise InvalidRequest("prompt_text", str(err).removeprefix("prompt: ")) from None
