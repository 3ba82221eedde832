"""Open-loop replay of the live bench's requests through a router, timed at the client.

Every request is sent at its arrival time whatever happened to the earlier ones, with its own
deadline (`deadline_ms`) and class. Its latency is the client's: from the moment it was sent to
its final message; it met its SLO when it finished within its deadline by that clock. How each
request ended:
- met / late: finished within / after its deadline;
- expired: DEADLINE_EXCEEDED (its deadline passed before it finished: the workers and the router
  give up then, like a client that stops waiting);
- shed: RESOURCE_EXHAUSTED from the router's routing decision ("shed: ...");
- rejected: RESOURCE_EXHAUSTED after every replica offered it refused it (admission);
- error: any other status (counted as a miss, and reported).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

import grpc

from dilaserve.livebench.workload import LiveRequest
from worker.client.async_client import AsyncWorkerClient
from worker.client.messages import generate_request

GIVE_UP_AFTER_S = 10.0  # past its deadline, the client's gRPC deadline: nothing hangs forever


@dataclass(frozen=True)
class LiveOutcome:
    index: int
    status: str  # met | late | expired | shed | rejected | error
    send_lag_s: float  # sent this long after its scheduled arrival (the client's own delay)
    latency_s: float  # send -> final message (nan unless finished)
    text: str = ""
    threshold: float = math.nan  # token-weighted mean threshold it decoded at
    forwards: int = 0
    detail: str = ""  # the status details for errors
    server_ms: float = math.nan  # the server's own arrival -> final time (the router's or worker's)
    queued_ms: float = math.nan  # the server's arrival -> admission to a row
    replica_ms: float = math.nan  # the replica's own arrival -> final time

    @property
    def finished(self) -> bool:
        return self.status in ("met", "late")


async def replay(target: str, requests: tuple[LiveRequest, ...]) -> list[LiveOutcome]:
    """Send every request at its time; one outcome per request, in request order."""
    async with AsyncWorkerClient(target) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        pending = []
        for request in requests:
            delay = start + request.at_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(_one(client, request, start)))
        return list(await asyncio.gather(*pending))


async def _one(client: AsyncWorkerClient, request: LiveRequest, start: float) -> LiveOutcome:
    loop = asyncio.get_running_loop()
    message = generate_request(request.prompt, request.canvas, deadline_ms=request.deadline_ms,
                               slo_class=request.slo_class, request_id=request.request_id)
    sent = loop.time()
    lag = sent - (start + request.at_s)
    timeout = request.deadline_ms / 1e3 + GIVE_UP_AFTER_S
    try:
        async for response in client.stream(message, timeout):
            if response.HasField("final"):
                latency = loop.time() - sent
                final = response.final
                met = latency * 1e3 <= request.deadline_ms
                return LiveOutcome(request.index, "met" if met else "late", lag, latency,
                                   final.text, final.threshold_mean, final.forwards,
                                   server_ms=final.timings.e2e_ms,
                                   queued_ms=final.timings.queued_ms,
                                   replica_ms=final.timings.replica_e2e_ms)
    except grpc.aio.AioRpcError as err:
        return LiveOutcome(request.index, _status(err.code(), err.details() or ""), lag,
                           math.nan, detail=f"{err.code().name}: {err.details() or ''}")
    return LiveOutcome(request.index, "error", lag, math.nan, detail="no final message")


def _status(code: grpc.StatusCode, details: str) -> str:
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return "expired"
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return "shed" if details.startswith("shed") else "rejected"
    return "error"
