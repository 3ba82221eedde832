"""The router's call limit and how its refusals are booked (pure parts; the gRPC and HTTP paths
are in test_router_failures.py and test_http_api.py)."""

from __future__ import annotations

import pytest

from orchestrator.service.bookkeeping import Ending, RouterBook
from orchestrator.service.overload import RETRY_HINT, UNKNOWN_CLASS, CallLimit
from orchestrator.service.stats import cluster_stats, summary


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
