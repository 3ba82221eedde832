"""No request harms another: extreme values sent beside normal requests, at a worker and through
the router in front of it. Every normal request succeeds; every extreme one gets an explicit
answer (a result, INVALID_ARGUMENT naming its field, or RESOURCE_EXHAUSTED), never INTERNAL; the
server keeps serving."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from proto import dilaserve_pb2 as pb
from tests.router.helpers import routing
from tests.service.helpers import make_worker
from worker.client import AsyncWorkerClient, generate_request
from worker.service.server import ServerThread

pytestmark = pytest.mark.slow

NAN, INF = float("nan"), float("inf")


def extreme_requests() -> list[tuple[pb.GenerateRequest, set[grpc.StatusCode | None]]]:
    """(request, the answers it may get: None is a final message)."""
    invalid = {grpc.StatusCode.INVALID_ARGUMENT}
    ok_or_invalid = {None, grpc.StatusCode.INVALID_ARGUMENT}
    cases = []
    for t in (1e39, 1e-300, 1e-45, -1.0, NAN, INF, -INF, 1e308):
        cases.append((generate_request("abc", 16, temperature=t), invalid))
    for rule, p in (("topk", NAN), ("topk", INF), ("topk", 1e308), ("factor", NAN),
                    ("factor", 1e-300), ("topk", -1e308)):
        cases.append((generate_request("abc", 16, commit_rule=rule, rule_param=p), ok_or_invalid))
    for d in (NAN, -1.0, INF, 0.0):
        cases.append((generate_request("abc", 16, deadline_ms=d), invalid))
    cases.append((generate_request("abc", 16, deadline_ms=1e-3),
                  {grpc.StatusCode.RESOURCE_EXHAUSTED}))  # no time to serve it: refused at once
    cases.append((generate_request("abc", 16, deadline_ms=1e308), {None}))
    for t in (NAN, 1e-300, 0.0, 2.0):
        cases.append((generate_request("abc", 16, threshold=t), ok_or_invalid))
        cases.append((generate_request("abc", 16, min_threshold=t), ok_or_invalid))
    for b in (0, -5, 2**31 - 1):
        cases.append((generate_request("abc", 16, block_size=b), invalid))
    for n in (0, -1, 2**62):
        cases.append((generate_request("abc", n), invalid))
    for ids in ([-1], [2**62], [1]):  # negative, huge, the mask token
        cases.append((generate_request(ids, 8), invalid))
    cases.append((generate_request("abc", 8, seed=2**64 - 1, temperature=1.0), {None}))
    return cases


async def _answer(client: AsyncWorkerClient, request: pb.GenerateRequest):
    try:
        async for message in client.stream(request, timeout=60):
            if message.HasField("final"):
                return None, message.final
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details()
    return grpc.StatusCode.UNKNOWN, "no final message"


async def _mix(target: str) -> tuple[list, list]:
    """(the normal requests' answers, then one more after; the extreme requests' answers)."""
    extremes = [r for r, _ in extreme_requests()]
    normal = [generate_request(f"ab{i % 10}", 16, temperature=0.8 if i % 2 else 0.0, seed=i)
              for i in range(24)]
    # interleaved, all in flight together: extreme rows are batched with normal ones
    tagged = sorted([(i, False, r) for i, r in enumerate(normal)]
                    + [(i, True, r) for i, r in enumerate(extremes)], key=lambda t: t[:2])
    async with AsyncWorkerClient(target) as client:
        answers = await asyncio.gather(*(_answer(client, r) for _, _, r in tagged))
        after = await _answer(client, generate_request("abc", 8))
    normal_answers = [a for (_, extreme, _), a in zip(tagged, answers) if not extreme]
    extreme_answers = [a for (_, extreme, _), a in zip(tagged, answers) if extreme]
    return normal_answers + [after], extreme_answers


@pytest.mark.parametrize("where", ["worker", "router"])
def test_extreme_values_beside_normal_requests_harm_none_of_them(where):
    server = ServerThread(make_worker())
    server.start()
    try:
        if where == "worker":
            normal, extreme = asyncio.run(_mix(server.target))
        else:
            with routing([server]) as (router, _):
                normal, extreme = asyncio.run(_mix(router.target))
    finally:
        server.stop(grace_s=0.0)
    assert all(code is None for code, _ in normal), [a for a in normal if a[0] is not None]
    for (request, allowed), (code, detail) in zip(extreme_requests(), extreme):
        assert code in allowed, (request, code, detail)
        assert code is not grpc.StatusCode.INTERNAL
