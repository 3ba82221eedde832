"""10,000 random requests (mostly invalid, or tiny canvases) against a running worker: it never
crashes and answers every one with a final message or a gRPC status; nothing is left in flight."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proto import dilaserve_pb2 as pb
from tests.service.helpers import serving
from worker.client import AsyncWorkerClient

pytestmark = pytest.mark.slow

BATCH = 50
BATCHES = 200  # x BATCH = 10,000 requests
EXPECTED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ALREADY_EXISTS,
}
FIELDS = (
    "request_id",
    "prompt_text",
    "prompt_ids",
    "max_new_tokens",
    "deadline_ms",
    "slo_class",
    "quality.",
    "commit_rule",
    "rule_param",
    "temperature",
)

NAN, INF = float("nan"), float("inf")
UNSET = object()


def pick(valid: list, invalid: list, invalid_share: float = 0.08):
    """Mostly a valid value, sometimes an invalid one (so that a good share of requests run)."""
    repeat = max(1, round(len(invalid) * (1 - invalid_share) / (invalid_share * len(valid))))
    return st.sampled_from(valid * repeat + invalid)


@st.composite
def requests(draw) -> tuple[pb.GenerateRequest, float | None]:
    r = pb.GenerateRequest()
    r.request_id = draw(pick(["", "", "", "dup"], ["a b", "x" * 130, "\n"]))
    kind = draw(pick(["text", "text", "ids"], ["both", "none", "bad-text", "bad-ids"]))
    if kind in ("text", "both"):
        r.prompt_text = draw(st.text(alphabet="abc123+=:>", min_size=1, max_size=12))
    if kind == "bad-text":
        r.prompt_text = draw(st.sampled_from(["", "é", "a#b", "a" * 170]))
    if kind in ("ids", "both"):
        r.prompt_ids.extend(draw(st.lists(st.integers(3, 39), min_size=1, max_size=6)))
    if kind == "bad-ids":
        r.prompt_ids.extend(draw(st.lists(st.integers(-3, 45), max_size=6)))
    r.max_new_tokens = draw(pick([1, 2, 4, 8, 12], [0, -2, 65, 2**40]))
    deadline = draw(pick([UNSET, UNSET, 5000.0, 1.0], [0.0, -1.0, NAN, INF, 1e-300]))
    if deadline is not UNSET:
        r.deadline_ms = deadline
    r.slo_class = draw(pick(["", "standard", "strict", "batch"], ["gold", "Standard"]))
    q = r.quality
    for name, valid, invalid in (
        ("min_threshold", [UNSET, UNSET, 0.6, 1.0], [0.0, -0.5, 1.5, NAN]),
        ("threshold", [UNSET, UNSET, 0.7, 0.95], [0.0, 2.0, INF]),
        ("block_size", [UNSET, UNSET, 4, 8], [0, -1, 1000]),
        ("min_block_size", [UNSET, UNSET, 4], [0, 16]),
        ("max_block_size", [UNSET, UNSET, 8, 16], [-1, 2, 10_000]),
    ):
        value = draw(pick(valid, invalid, 0.05))
        if value is not UNSET:
            setattr(q, name, value)
    r.commit_rule = draw(pick(["", "threshold", "topk", "factor"], ["nope", "TOPK"]))
    param = draw(pick([UNSET, UNSET, UNSET, 1.0, 2.0, 0.5], [0.0, -1.0, NAN, 1.5], 0.05))
    if param is not UNSET:
        r.rule_param = param
    r.temperature = draw(pick([0.0, 0.0, 0.7], [-1.0, NAN]))
    r.seed = draw(st.integers(0, 2**64 - 1))
    priority = draw(st.sampled_from([UNSET, UNSET, 0, 5, -(2**31), 2**31 - 1]))
    if priority is not UNSET:
        r.priority = priority
    timeout = draw(st.sampled_from([None] * 12 + [0.001, 0.05, 5.0]))
    return r, timeout


async def answer(client: AsyncWorkerClient, request, timeout) -> str:
    finals = 0
    try:
        async for message in client.stream(request, timeout):
            finals += message.HasField("final")
    except grpc.RpcError as err:
        assert err.code() in EXPECTED, (err.code(), err.details(), request)
        if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
            assert err.details().startswith(FIELDS), err.details()
        return err.code().name
    assert finals == 1, request
    return "final"


def test_random_requests_are_all_answered():
    outcomes: dict[str, int] = {}
    with serving() as (server, sync_client):

        @settings(
            max_examples=BATCHES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(requests(), min_size=BATCH, max_size=BATCH))
        def send_batch(batch):
            async def run():
                async with AsyncWorkerClient(server.target) as client:
                    return await asyncio.gather(*(answer(client, r, t) for r, t in batch))

            for outcome in asyncio.run(run()):
                outcomes[outcome] = outcomes.get(outcome, 0) + 1

        send_batch()
        assert sum(outcomes.values()) == BATCH * BATCHES
        # a good share of both kinds (about 9% of the mix finishes, 80% is invalid): the test
        # exercises running requests as well as validation
        assert outcomes.get("final", 0) > 500 and outcomes.get("INVALID_ARGUMENT", 0) > 1000
        stats = sync_client.stats()
        assert sync_client.health() == "SERVING"
        assert stats.queued == stats.running == 0
        ended = stats.finished + stats.expired + stats.cancelled + stats.failed
        assert stats.accepted == ended and stats.failed == 0
