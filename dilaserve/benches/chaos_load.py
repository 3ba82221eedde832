"""The load `dilaserve bench-chaos` sends, and how each call ended as the client saw it.

Normal requests are held-out task prompts of the shipped model in the policy's classes, without
their own deadline_ms (the class's deadline applies). Fuzzed requests mix valid fields with
invalid and extreme ones (huge, tiny, NaN and infinite floats; negative and huge integers; bytes
that are not UTF-8). Every call has a client-side gRPC deadline well past its SLO deadline: a
call that reaches it is *lost* (the server never answered).

How a call is counted (`Call`; the same rules as the router's books, docs/reliability.md "How
bench-chaos counts"): *refused* when the server said no before any partial (a refusal status:
RESOURCE_EXHAUSTED, INVALID_ARGUMENT, ALREADY_EXISTS, ...), else *admitted*; an admitted call
*met* its deadline only with a final message in time by the client's clock (lost, expired,
failed and late ones are misses). Calls in a best-effort class (no SLO) are counted apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from dataclasses import dataclass

import grpc

from dilaserve.policy import Policy
from proto import dilaserve_pb2 as pb
from worker.client.async_client import AsyncWorkerClient
from worker.client.messages import generate_request
from worker.models.task_suites import suite_of

LOST_AFTER_S = 30.0  # the client's own gRPC deadline: a call still open then was never answered
EXPECTED_CODES = {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED",
                  "ALREADY_EXISTS", "CANCELLED"}  # CANCELLED: only for calls the client dropped
# the server's "no" to a request it did not take on (when it comes before any partial): a
# refusal, not an admitted request that failed
REFUSAL_CODES = frozenset({
    "RESOURCE_EXHAUSTED", "INVALID_ARGUMENT", "ALREADY_EXISTS", "FAILED_PRECONDITION",
    "OUT_OF_RANGE", "NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED", "UNIMPLEMENTED"})


def best_effort_class(policy: Policy, name: str) -> bool:
    """Whether requests naming class `name` are best-effort (no SLO: admitted even when late, and
    not in the attainment figures); a name the policy lacks is not (such a request is invalid,
    or refused at the router's call limit under the class-less "(unknown)")."""
    try:
        return policy.slo_class(name).best_effort
    except ValueError:
        return False


@dataclass(frozen=True)
class Call:
    """One request's end, at the client."""

    slo_class: str
    status: str  # "ok" (a final message) or the gRPC status code's name; "lost"; "abandoned"
    sent_s: float  # since the scenario started
    latency_s: float  # send -> the end (final message or status)
    deadline_s: float = float("inf")  # the deadline the server applies to this request
    detail: str = ""
    partials: int = 0
    best_effort: bool = False  # its class is best-effort: no SLO, counted apart

    @property
    def met(self) -> bool:
        """A final message within the deadline, by the client's clock."""
        return self.status == "ok" and self.latency_s <= self.deadline_s

    @property
    def refused(self) -> bool:
        """The server refused it before any partial: never admitted."""
        return self.status in REFUSAL_CODES and not self.partials

    @property
    def admitted(self) -> bool:
        """Taken on by the server (not refused, not dropped by the client): from here on it
        either met its deadline or missed it (late, expired, failed or lost)."""
        return not self.refused and self.status != "abandoned"

    @property
    def counted(self) -> bool:
        """In the attainment of all requests, as the router's books count (bookkeeping.COUNTED):
        a final message (met or late), expired, or refused for capacity (RESOURCE_EXHAUSTED
        before any partial); not invalid, failed, cancelled or lost."""
        return self.status in ("ok", "DEADLINE_EXCEEDED") or (
            self.status == "RESOURCE_EXHAUSTED" and not self.partials)


class Prompts:
    """Held-out task prompts in turn, each request in the next class of the policy's, with that
    class's deadline (the request sets none of its own)."""

    def __init__(self, policy: Policy, seed: int = 0) -> None:
        suite = suite_of()  # the shipped model's one-block tasks: requests take 32-token canvases
        self.examples = suite.heldout_set(40, seed=1234 + seed, tasks=suite.short_tasks)
        self.policy = policy
        self.classes = [c.name for c in policy.classes]
        self.turn = 0

    def next(self, max_new_tokens: int = 32) -> Sent:
        ex = self.examples[self.turn % len(self.examples)]
        slo = self.policy.slo_class(self.classes[self.turn % len(self.classes)])
        self.turn += 1
        request = generate_request(ex.prompt, max_new_tokens, slo_class=slo.name)
        return Sent(request, slo.name, slo.deadline_s(max_new_tokens), slo.best_effort)


@dataclass(frozen=True)
class Sent:
    request: pb.GenerateRequest
    slo_class: str
    deadline_s: float = float("inf")
    best_effort: bool = False


async def call(client: AsyncWorkerClient, sent_request: Sent, t0: float,
               cancel_after_s: float | None = None) -> Call:
    """Run one request to its end. `cancel_after_s`: the client drops the call then."""
    request = sent_request.request
    sent = time.monotonic()
    partials = 0

    def ended(status: str, detail: str = "") -> Call:
        return Call(sent_request.slo_class, status, sent - t0, time.monotonic() - sent,
                    sent_request.deadline_s, detail, partials, sent_request.best_effort)

    stream = client.stream(request, LOST_AFTER_S)
    try:
        async with asyncio.timeout(cancel_after_s):
            async for message in stream:
                if message.HasField("final"):
                    return ended("ok")
                partials += message.HasField("partial")
    except TimeoutError:  # the client's own drop
        return ended("abandoned")
    except grpc.aio.AioRpcError as err:
        code, details = err.code(), err.details() or ""
        if code is grpc.StatusCode.DEADLINE_EXCEEDED and \
                time.monotonic() - sent >= LOST_AFTER_S * 0.99:
            return ended("lost", details)
        return ended(code.name, details)
    return ended("lost", "the stream ended without a final message")


async def poisson(target: str, rate: float, duration_s: float, prompts: Prompts,
                  seed: int = 0, during=None, in_flight: int | None = None) -> list[Call]:
    """Open-loop Poisson arrivals at `rate` for `duration_s`; `during(t0)`: a coroutine run
    beside the load (a fault injected mid-run); `in_flight`: the client holds at most that many
    calls open, and an arrival that finds them all open waits for one to end before it is sent
    (its clock starts when it is sent)."""
    rng = random.Random(seed)
    gate = asyncio.Semaphore(in_flight) if in_flight is not None else contextlib.nullcontext()

    async def gated(sent: Sent, t0: float) -> Call:
        async with gate:
            return await call(client, sent, t0)

    async with AsyncWorkerClient(target) as client:
        loop_t0 = time.monotonic()
        side = asyncio.create_task(during(loop_t0)) if during is not None else None
        pending, at = [], 0.0
        while True:
            at += rng.expovariate(rate)
            if at >= duration_s:
                break
            delay = loop_t0 + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(gated(prompts.next(), loop_t0)))
        calls = list(await asyncio.gather(*pending))
        if side is not None:
            await side
        return calls


NAN, INF = float("nan"), float("inf")
FLOATS = [0.0, -1.0, 1e-300, 1e-45, 1e39, 1e308, NAN, INF, -INF]


@functools.cache
def _fuzz_bases() -> tuple:
    """The held-out prompts fuzzed requests start from (drawn once, not per request)."""
    suite = suite_of()
    return tuple(suite.heldout_set(4, seed=1234, tasks=suite.short_tasks))


def fuzzed(rng: random.Random, classes: list[str], i: int) -> Sent:
    """Mostly valid, with one to three fields set to something invalid or extreme."""
    examples = _fuzz_bases()
    ex = examples[i % len(examples)]
    request = generate_request(ex.prompt, rng.choice([1, 4, 8, 16]),
                               slo_class=rng.choice(classes))
    for _ in range(rng.randint(1, 3)):
        field = rng.randrange(11)
        if field == 0:
            request.temperature = rng.choice(FLOATS + [0.7])
        elif field == 1:
            request.deadline_ms = rng.choice(FLOATS + [5000.0])
        elif field == 2:
            request.max_new_tokens = rng.choice([0, -1, 2**40, 2**62, 129, 8])
        elif field == 3:
            request.quality.threshold = rng.choice(FLOATS + [0.7])
        elif field == 4:
            request.quality.block_size = rng.choice([0, -7, 2**31 - 1, 3, 8])
        elif field == 5:
            request.commit_rule = rng.choice(["topk", "factor", "nope"])
            request.rule_param = rng.choice(FLOATS + [2.0, 0.5])
        elif field == 6:
            request.prompt_text = ""
            request.prompt_ids.extend(rng.choice([[-1], [2**62], [1], [5, 6, 7]]))
        elif field == 7:
            request.slo_class = rng.choice(["gold", "", "Standard"])
        elif field == 8:
            request.request_id = rng.choice(["dup", "x" * 200, "a b", ""])
        elif field == 9:
            request.priority = rng.choice([2**31 - 1, -(2**31), 0])
        else:
            request.quality.min_threshold = rng.choice(FLOATS + [0.9])
    return Sent(request, request.slo_class)
