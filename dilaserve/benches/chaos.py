"""`dilaserve bench-chaos`: the embedded cluster under faults, each request's end accounted for.

One cluster (the default policy, local Ray on 127.0.0.1, loopback only) serves, in order:
1. capacity: Poisson load stepping up (x1.5) until the share of requests meeting their deadline
   falls below 90%; the last rate above it is the capacity the next scenarios are sized by;
2. fuzz: requests with invalid and extreme fields (and some whose bytes are not UTF-8), Poisson
   at a fixed rate (at most 100 in flight);
3. overload: 10x the capacity offered for 20 s, by a client that holds at most the router's call
   limit open (past what gRPC accepts, calls wait unseen in its transport: docs/reliability.md);
4. kill: half the capacity; a replica is killed mid-run;
5. bad reload: a quarter of the capacity; the policy file is replaced by a broken one, then
   restored;
6. abandon: streams opened and dropped by the client at once or after their first block; then
   every replica must report nothing left in flight.
Per scenario: requests sent, how each ended (a final message, or its status), lost (no answer by
the client's own deadline), attainment of the admitted (met / not refused) and of all counted
requests by the client's clock, the latter also by the router's books, best-effort requests
apart, and the time to a refusal (p50/p99) at the client and at the router. The client judges
each request by the deadline the server applies to it (`relative_deadline_s`, the earliest of its
deadline_ms, its class's and its gRPC deadline). The rules (`chaos_load.Call`, and
`_router_books` for the router's side) are docs/reliability.md's "How bench-chaos counts".
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from dilaserve.benches.chaos_load import (
    EXPECTED_CODES,
    LOST_AFTER_S,
    Call,
    Prompts,
    Sent,
    best_effort_class,
    call,
    fuzzed,
    poisson,
)
from dilaserve.benches.chaos_report import bucket_percentiles, decision_buckets, longest_shed
from dilaserve.policy import Policy
from proto import dilaserve_pb2 as pb
from worker.client.async_client import AsyncWorkerClient
from worker.service.validation import relative_deadline_s

Log = Callable[[str], None]
STEP_S = 3.0  # each capacity step's duration
WARMUP_S = 2.0  # unscored load before the capacity steps (first steps of a cold cluster)
BROKEN_POLICY = "version: 1\ndefault_class: nope\nclasses: [{name: standard, deadline: {ms: -5}}]\n"


@dataclass
class Scenario:
    name: str
    calls: list[Call]
    notes: list[str] = field(default_factory=list)
    # met / ended by the router's books over the same requests, SLO classes only
    router_attainment: float | None = None
    router_refusal_ms: tuple[float, float] | None = None  # p50, p99 at the router (histogram)
    router_endings: dict[str, int] = field(default_factory=dict)  # SLO classes, per ending
    router_best_effort: dict[str, int] = field(default_factory=dict)  # best-effort classes

    def row(self) -> dict:
        """The figures of docs/reliability.md "How bench-chaos counts": attainment over the SLO
        classes' requests; best-effort ones (no SLO) in their own counts."""
        statuses = Counter(c.status for c in self.calls)
        slo = [c for c in self.calls if not c.best_effort]
        admitted = [c for c in slo if c.admitted]
        counted = [c for c in slo if c.counted]
        best_effort = [c for c in self.calls if c.best_effort and c.admitted]
        refusals = sorted(c.latency_s for c in self.calls if c.refused)
        unexpected = sum(n for s, n in statuses.items()
                         if s not in EXPECTED_CODES | {"ok", "abandoned"})
        return {
            "scenario": self.name, "sent": len(self.calls), "statuses": dict(statuses),
            "lost": statuses.get("lost", 0), "unexpected": unexpected,
            "admitted": len(admitted),
            "attainment_admitted": _share(admitted),
            "counted": len(counted),
            "client_attainment": _share(counted),
            "router_attainment": self.router_attainment,
            "best_effort_admitted": len(best_effort),
            "best_effort_met": sum(c.met for c in best_effort),
            "refusal_p50_ms": _pct(refusals, 50), "refusal_p99_ms": _pct(refusals, 99),
            "router_refusal_ms": self.router_refusal_ms,
            "router_endings": self.router_endings,
            "router_best_effort": self.router_best_effort,
            "notes": self.notes,
        }


def _share(calls: list[Call]) -> float | None:
    """The share of `calls` that met their deadline (None: no calls)."""
    return sum(c.met for c in calls) / len(calls) if calls else None


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return 1e3 * values[min(len(values) - 1, int(len(values) * q / 100))]


class ChaosRun:
    def __init__(self, handle, policy_path: Path, policy: Policy, log: Log,
                 metrics_url: str, seed: int = 0) -> None:
        self.handle = handle
        self.metrics_url = metrics_url
        self.target = handle.target
        self.policy_path = policy_path
        self.log = log
        self.seed = seed
        self.prompts = Prompts(policy, seed)
        self.classes = self.prompts.classes

    # -- the scenarios ------------------------------------------------------------------------

    def capacity(self, start_rate: float = 20.0, attainment: float = 0.9,
                 lowest: float = 2.0) -> tuple[float, Scenario]:
        """Up by x1.5 from `start_rate` while >= `attainment` of the SLO classes' requests
        meet their deadline (down by /2 first if the start rate already misses); after a
        warm-up step."""
        asyncio.run(poisson(self.target, start_rate, WARMUP_S, self.prompts, self.seed))
        best = 0.0

        def search() -> list[Call]:
            nonlocal best
            rate, calls = start_rate, []
            while lowest <= rate < 5000:
                step = asyncio.run(poisson(self.target, rate, STEP_S, self.prompts, self.seed))
                met = _share([c for c in step if not c.best_effort]) or 0.0
                self.log(f"  capacity: {rate:.1f} req/s -> {met:.1%} met")
                calls += step
                if met >= attainment:
                    best, rate = rate, rate * 1.5
                elif best:
                    break
                else:
                    rate /= 2
            return calls

        scenario = self._measured("capacity", search)
        scenario.notes.append(f"capacity {best:.1f} req/s (the last rate at which >= "
                              f"{attainment:.0%} met their deadline)")
        if not best:
            raise RuntimeError(f"capacity: fewer than {attainment:.0%} of the requests met their "
                               f"deadline even at {lowest:g} req/s; is the machine busy?")
        return best, scenario

    def fuzz(self, count: int, in_flight: int = 100, rate: float | None = None) -> Scenario:
        """`count` fuzzed requests, made before the clock starts (making one takes the client
        about 2 ms), at most `in_flight` at once; `rate`: sent at Poisson times at that rate
        (open loop) rather than each as soon as a place is free (closed loop)."""
        rng = random.Random(self.seed)
        made = [self._with_deadline(fuzzed(rng, self.classes, i)) for i in range(count)]

        async def run() -> list[Call]:
            gate = asyncio.Semaphore(in_flight)
            async with AsyncWorkerClient(self.target) as client:
                t0 = time.monotonic()
                raw = client.channel.unary_stream(
                    "/dilaserve.v1.Generate/Generate", request_serializer=lambda b: b,
                    response_deserializer=lambda b: b)

                async def one(i: int, at_s: float) -> Call:
                    await asyncio.sleep(max(0.0, t0 + at_s - time.monotonic()))
                    async with gate:
                        if i % 50 == 0:  # a string field whose bytes are not UTF-8
                            return await _raw_call(raw, made[i], t0)
                        return await call(client, made[i], t0)
                times = _arrival_times(count, rate, rng)
                return list(await asyncio.gather(*(one(i, at) for i, at in enumerate(times))))
        return self._scored("fuzz", run)

    def overload(self, capacity: float, factor: float, duration_s: float,
                 in_flight: int | None = None) -> Scenario:
        """`factor` x `capacity` offered for `duration_s`, by a client holding at most
        `in_flight` calls open (None: no limit); the note says the rate actually sent."""
        rate = capacity * factor
        scenario = self._scored(f"overload x{factor:g}", lambda: poisson(
            self.target, rate, duration_s, self.prompts, self.seed + 1, in_flight=in_flight))
        span = max((c.sent_s for c in scenario.calls), default=0.0)
        held = f", at most {in_flight} calls open" if in_flight is not None else ""
        scenario.notes.append(f"{rate:.0f} req/s offered for {duration_s:g} s{held}: "
                              f"sent at {len(scenario.calls) / max(span, 1e-9):.0f} req/s "
                              f"over {span:.1f} s")
        return scenario

    def kill(self, capacity: float, duration_s: float = 12.0, at_s: float = 4.0) -> Scenario:
        import ray

        killed: list[str] = []

        async def fault(t0: float) -> None:
            await asyncio.sleep(max(0.0, t0 + at_s - time.monotonic()))
            replicas = await asyncio.to_thread(self.handle.summary)
            victim = replicas["replicas"][0]["id"]
            actor = await asyncio.to_thread(
                lambda: ray.get(self.handle.controller.replica.remote(victim)))
            ray.kill(actor)
            killed.append(f"replica {victim} killed at {time.monotonic() - t0:.1f} s")

        scenario = self._scored("kill a replica", lambda: poisson(
            self.target, capacity * 0.5, duration_s, self.prompts, self.seed + 2, fault))
        scenario.notes += killed
        scenario.notes.append(longest_shed(scenario.calls, at_s))
        return scenario

    def bad_reload(self, capacity: float, duration_s: float = 8.0) -> Scenario:
        good = self.policy_path.read_text()

        async def fault(t0: float) -> None:
            await asyncio.sleep(2.0)
            self.policy_path.write_text(BROKEN_POLICY)
            await asyncio.sleep(3.0)
            self.policy_path.write_text(good)

        scenario = self._scored("bad policy reload", lambda: poisson(
            self.target, capacity * 0.25, duration_s, self.prompts, self.seed + 3, fault))
        log = self.handle.summary()["log"]
        rejected = [line for line in log if "reload rejected" in line]
        scenario.notes.append(f"reload rejected and reported: {'yes' if rejected else 'NO'}")
        return scenario

    def abandon(self, count: int) -> Scenario:
        async def run() -> list[Call]:
            async with AsyncWorkerClient(self.target) as client:
                t0 = time.monotonic()
                calls = []
                for first in range(0, count, 100):
                    batch = [call(client, self.prompts.next(128), t0,
                                  cancel_after_s=0.0 if i % 2 else 0.005)
                             for i in range(first, min(count, first + 100))]
                    calls += await asyncio.gather(*batch)
                return calls
        scenario = self._scored("abandon streams", run)
        left = self._rows_left_after(5.0)
        scenario.notes.append(f"rows in flight on the replicas 5 s after: {left}")
        after = asyncio.run(_one(self.target, self.prompts))
        scenario.notes.append(f"a request after: {after.status}")
        return scenario

    # -- accounting ---------------------------------------------------------------------------

    def _with_deadline(self, sent: Sent) -> Sent:
        policy = self.prompts.policy
        return Sent(sent.request, sent.slo_class, applied_deadline_s(sent.request, policy),
                    best_effort_class(policy, sent.request.slo_class))

    def _scored(self, name: str, run, notes: list[str] | None = None) -> Scenario:
        return self._measured(name, lambda: asyncio.run(run()), notes)

    def _measured(self, name: str, measure: Callable[[], list[Call]],
                  notes: list[str] | None = None) -> Scenario:
        """The calls `measure` makes, with the router's books and decision times over them."""
        before, decided = self._router_books(), decision_buckets(self.metrics_url)
        calls = measure()
        after = self._router_books()
        refused = bucket_percentiles(decided, decision_buckets(self.metrics_url))
        slo, best_effort = (_delta(before[side], after[side]) for side in (False, True))
        ended = slo.get("ended", 0)
        scenario = Scenario(name, calls, list(notes or []),
                            slo.get("met", 0) / ended if ended else None, refused,
                            slo, best_effort)
        row = scenario.row()
        self.log(f"  {name}: {row['sent']} sent, {row['statuses']}; router: "
                 f"{scenario.router_endings}; best-effort: {best_effort}")
        return scenario

    def _router_books(self) -> dict[bool, Counter[str]]:
        """The router's books summed over the SLO classes (the class-less "(unknown)" too, with
        the requests refused as invalid before a class was known) and, apart, over the
        best-effort classes (key True): met, ended, each ending."""
        router = self.handle.summary().get("router", {})
        books = {False: Counter({"invalid": router.get("invalid", 0)}), True: Counter()}
        for name, c in router.get("classes", {}).items():
            books[best_effort_class(self.prompts.policy, name)].update(
                {k: v for k, v in c.items()
                 if isinstance(v, int) and k not in ("requests", "invalid")})
        return books

    def _rows_left_after(self, wait_s: float) -> int:
        end = time.monotonic() + wait_s
        while True:
            replicas = self.handle.summary().get("router", {}).get("replicas", [])
            left = sum(r.get("queued", 0) + r.get("running", 0) for r in replicas)
            if left == 0 or time.monotonic() >= end:
                return left
            time.sleep(0.2)


def _delta(before: Counter[str], after: Counter[str]) -> dict[str, int]:
    """What was counted between two readings (counts that did not move left out)."""
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def _arrival_times(count: int, rate: float | None, rng: random.Random) -> list[float]:
    """Send times from the start: all at once (None), or Poisson at `rate`."""
    if rate is None:
        return [0.0] * count
    times, at = [], 0.0
    for _ in range(count):
        at += rng.expovariate(rate)
        times.append(at)
    return times


def applied_deadline_s(request: pb.GenerateRequest, policy: Policy) -> float:
    """The deadline the server applies to a request (the one rule, with the client's gRPC
    deadline), so that the client's clock judges it by the same one; none (inf) for a request
    the server refuses as invalid."""
    try:
        return relative_deadline_s(request, policy.slo_class(request.slo_class), LOST_AFTER_S)
    except ValueError:  # an unknown class or a bad deadline_ms: INVALID_ARGUMENT
        return math.inf


async def _raw_call(raw, sent_request: Sent, t0: float) -> Call:
    """Bytes that are not a valid message: the server must refuse them as INVALID_ARGUMENT."""
    request = sent_request.request
    data = request.SerializeToString()
    text = request.prompt_text.encode()
    data = data.replace(text, b"\xff" * len(text), 1) if text else data + b"\x12\x01\xff"
    sent = time.monotonic()

    def ended(status: str, detail: str = "") -> Call:
        return Call(sent_request.slo_class, status, sent - t0, time.monotonic() - sent,
                    sent_request.deadline_s, detail, best_effort=sent_request.best_effort)

    try:
        async for _ in raw(data, timeout=LOST_AFTER_S):
            pass
        return ended("ok")
    except grpc.aio.AioRpcError as err:
        return ended(err.code().name, err.details() or "")


async def _one(target: str, prompts: Prompts) -> Call:
    async with AsyncWorkerClient(target) as client:
        return await call(client, prompts.next(), time.monotonic())
