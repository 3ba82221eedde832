"""The router's call limit and how its refusals are booked (pure parts; the gRPC and HTTP paths
are in test_router_failures.py and test_http_api.py)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from dilaserve.policy import parse_policy
from orchestrator.service.bookkeeping import Ending, RouterBook
from orchestrator.service.overload import RETRY_HINT, UNKNOWN_CLASS, CallLimit
from orchestrator.service.servicer import RouterServicer
from orchestrator.service.stats import cluster_stats, summary
from worker.client.messages import generate_request

POLICY = parse_policy("""
default_class: standard
classes:
  - name: standard
    deadline: {ms: 20000}
  - name: batch
    best_effort: true
worker:
  block_size: 8
  max_new_tokens: 64
""", "test-policy")


def test_the_limit_takes_up_to_max_calls_and_frees_a_place_on_release():
    limit = CallLimit(2)
    assert limit.take() and limit.take() and not limit.take()
    assert limit.in_flight == 2
    limit.release()
    assert limit.take() and limit.in_flight == 2
    assert "2 calls" in limit.refusal() and "retry in 1 s" in limit.refusal()
    unlimited = CallLimit(None)
    assert all(unlimited.take() for _ in range(10_000))
    with pytest.raises(ValueError, match="max_calls"):
        CallLimit(0)


def test_the_retry_hint_is_grpcs_pushback_trailer():
    assert RETRY_HINT == (("grpc-retry-pushback-ms", "1000"),)


def test_overloaded_requests_are_in_attainments_denominator_as_a_client_counts_them():
    """A client counts every RESOURCE_EXHAUSTED as a request that did not meet its deadline and
    leaves INVALID_ARGUMENT out: so do the router's books."""
    book = RouterBook({"standard": 0.9})
    for ending in (Ending.MET, Ending.MET, Ending.SHED, Ending.OVERLOADED):
        book.arrived("standard")
        book.ended("standard", ending)
    book.arrived(UNKNOWN_CLASS)
    book.ended(UNKNOWN_CLASS, Ending.OVERLOADED)
    book.invalid()
    book.ended("standard", Ending.INVALID)
    snap = book.snapshot()
    assert snap.ended == 5 and snap.attainment == pytest.approx(2 / 5)
    assert snap.total(Ending.SHED, Ending.OVERLOADED) == 3
    stats = cluster_stats(snap, [], 1.0)
    assert stats.shed == 3 and stats.rejected == 3 and stats.attainment == pytest.approx(0.4)
    report = summary(snap, [], 1.0)
    assert report["overloaded"] == 2 and report["shed"] == 3 and report["invalid"] == 2
    assert report["classes"][UNKNOWN_CLASS]["ended"] == 1
    assert report["classes"]["standard"]["overloaded"] == 1


class _Aborted(Exception):
    pass


class _Context:
    """The part of a gRPC servicer context the refusal uses."""

    def __init__(self) -> None:
        self.code = None
        self.trailers = ()

    def time_remaining(self) -> None:
        return None

    def set_trailing_metadata(self, metadata) -> None:
        self.trailers = metadata

    async def abort(self, code, details):
        self.code = code
        raise _Aborted(details)


class _Proxy:
    def __init__(self) -> None:
        self.now = 100.0
        self.decisions: list[bool] = []

    def clock(self) -> float:
        return self.now

    def on_decision(self, seconds: float, refused: bool) -> None:
        self.decisions.append(refused)


class _Pool:
    def request_limits(self) -> None:
        return None  # no replica has reported its limits yet


def test_calls_refused_at_the_limit_are_arrivals_the_controller_sees():
    """The controller plans for the load offered: a valid call refused at the call limit is
    reported as an arrival of its class, with its lengths (as a routed one is); one that is not
    valid is booked as overloaded but is no demand to plan for."""
    arrivals = []
    book = RouterBook({"standard": 0.9, "batch": 0.0})
    limit = CallLimit(1)
    assert limit.take()  # the one place is taken: every call below is past the limit
    servicer = RouterServicer(_Proxy(), _Pool(), None, book, lambda: POLICY, None,
                              lambda: None, arrivals.append, lambda replica_id: None, limit)

    def refuse(request) -> _Context:
        context = _Context()
        with pytest.raises(_Aborted, match="router.max_concurrent_calls"):
            asyncio.run(servicer.generate(request, context))
        assert context.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert context.trailers == RETRY_HINT
        return context

    refuse(generate_request("abcd", 12))  # the default class
    refuse(generate_request("abc", 8, slo_class="batch"))
    refuse(generate_request("abc", 8, slo_class="gold"))  # no such class
    refuse(generate_request("abc", 1000))  # a class, but past max_new_tokens: not valid
    assert [(a.at_s, a.slo_class, a.prompt_len, a.canvas_len) for a in arrivals] == [
        (100.0, "standard", 4, 16), (100.0, "batch", 3, 8)]
    classes = summary(book.snapshot(), [], 1.0)["classes"]
    assert classes["standard"]["overloaded"] == 2 and classes["batch"]["overloaded"] == 1
    assert classes[UNKNOWN_CLASS]["overloaded"] == 1
    assert servicer.proxy.decisions == [True] * 4
    assert limit.in_flight == 1  # refusals take no place
