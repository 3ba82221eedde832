"""bench-chaos's accounting: how calls are scored, the router's histogram read back, the longest
refusal run after a fault, and its CLI's errors."""

from __future__ import annotations

import pytest

from dilaserve.benches.chaos import Scenario, applied_deadline_s
from dilaserve.benches.chaos_load import Call, fuzzed
from dilaserve.benches.chaos_report import bucket_percentiles, longest_shed, summary_table
from dilaserve.cli.main import main


def test_a_scenario_scores_admitted_requests_by_the_clients_clock():
    calls = [
        Call("a", "ok", 0.0, 0.05, deadline_s=0.1),  # met
        Call("a", "ok", 0.1, 0.30, deadline_s=0.1),  # finished late
        Call("a", "RESOURCE_EXHAUSTED", 0.2, 0.002),  # refused at arrival: not admitted
        Call("a", "DEADLINE_EXCEEDED", 0.3, 0.1, partials=1),  # admitted, expired
        Call("a", "INVALID_ARGUMENT", 0.4, 0.001),
        Call("a", "lost", 0.5, 30.0),
    ]
    row = Scenario("s", calls, router_attainment=0.25).row()
    assert row["sent"] == 6 and row["lost"] == 1 and row["unexpected"] == 1  # lost
    assert row["admitted"] == 4 and row["attainment_admitted"] == pytest.approx(1 / 4)
    assert row["client_attainment"] == pytest.approx(1 / 4)  # ok, ok, refused, expired
    assert row["refusal_p50_ms"] == pytest.approx(2.0)
    assert "s " in summary_table([row]) and "25.0%" in summary_table([row])


def test_refusals_are_not_admitted_and_best_effort_requests_are_counted_apart():
    """docs/reliability.md "How bench-chaos counts": any refusal status before a partial (a
    duplicate id's ALREADY_EXISTS too) is a refusal; an admitted request with a deadline that
    missed it is a miss however it ended; best-effort requests (no SLO) have their own counts."""
    calls = [
        Call("a", "ok", 0.0, 0.05, deadline_s=0.1),  # met
        Call("a", "ALREADY_EXISTS", 0.1, 0.001),  # a duplicate id: refused, not admitted
        Call("a", "RESOURCE_EXHAUSTED", 0.2, 0.3, deadline_s=0.1, partials=2),  # admitted, failed
        Call("a", "INTERNAL", 0.3, 0.01, deadline_s=0.1),  # admitted, failed: a miss
        Call("b", "ok", 0.4, 0.5, deadline_s=1e-303, best_effort=True),  # best-effort, late
        Call("b", "ok", 0.5, 0.05, deadline_s=30.0, best_effort=True),  # best-effort, in time
        Call("b", "RESOURCE_EXHAUSTED", 0.6, 0.001, best_effort=True),  # refused
        Call("a", "abandoned", 0.7, 0.005, deadline_s=0.1),  # the client's doing
    ]
    assert [c.refused for c in calls] == [False, True, False, False, False, False, True, False]
    row = Scenario("s", calls).row()
    assert row["admitted"] == 3 and row["attainment_admitted"] == pytest.approx(1 / 3)
    # as the router's books: ALREADY_EXISTS, INTERNAL and a refusal after partials are failed
    assert row["counted"] == 1 and row["client_attainment"] == 1.0
    assert (row["best_effort_admitted"], row["best_effort_met"]) == (2, 1)
    assert "1 / 2" in summary_table([row])


def test_the_router_books_are_split_into_slo_and_best_effort_classes():
    """The router's attainment is taken over the same requests as the client's: the SLO
    classes' (and the class-less "(unknown)"), best-effort classes apart."""
    from collections import Counter
    from types import SimpleNamespace

    from dilaserve.benches.chaos import ChaosRun, _delta
    from dilaserve.cli.serve import DEFAULT_POLICY
    from dilaserve.policy.cluster_loader import load_cluster_policy

    policy = load_cluster_policy(DEFAULT_POLICY).policy  # batch is best-effort
    book = {"requests": 9, "ended": 4, "met": 3, "late": 1, "invalid": 2, "attainment": 0.75}
    router = {"invalid": 5, "classes": {"interactive": book, "(unknown)": {"overloaded": 2},
                                       "batch": {"ended": 2, "met": 1, "late": 1}}}
    handle = SimpleNamespace(target="127.0.0.1:1", summary=lambda: {"router": router})
    books = ChaosRun(handle, DEFAULT_POLICY, policy, print, "")._router_books()
    assert books[False] == {"invalid": 5, "ended": 4, "met": 3, "late": 1, "overloaded": 2}
    assert books[True] == {"ended": 2, "met": 1, "late": 1}
    after = Counter({"met": 1, "ended": 5, "shed": 3})
    assert _delta(Counter({"met": 1, "ended": 2}), after) == {"ended": 3, "shed": 3}


def test_router_percentiles_come_from_the_histogram_between_two_readings():
    before = {0.001: 10.0, 0.005: 10.0, 0.05: 10.0, float("inf"): 10.0}
    after = {0.001: 60.0, 0.005: 108.0, 0.05: 110.0, float("inf"): 110.0}
    assert bucket_percentiles(before, after) == (1.0, 50.0)  # 50 of 100 under 1 ms; 99 under 50
    assert bucket_percentiles(after, after) is None


def test_the_longest_run_of_refused_windows_after_a_fault():
    refused = [Call("x", "RESOURCE_EXHAUSTED", t, 0.001) for t in (4.1, 4.3, 4.6, 4.9, 5.2)]
    served = [Call("y", "ok", t, 0.01, deadline_s=1.0) for t in (4.1, 4.6, 5.1)]
    note = longest_shed([*refused, *served, Call("x", "ok", 5.6, 0.01, 1.0)], 4.0)
    assert note.startswith("after the kill class x had all its requests refused for 1.5 s")
    assert "no class" in longest_shed(served, 4.0)


def test_fuzzed_requests_are_deterministic_and_some_are_extreme():
    import random

    def draw() -> list:
        rng = random.Random(3)
        return [fuzzed(rng, ["standard"], i).request for i in range(200)]

    one = draw()
    assert [r.SerializeToString() for r in one] == [r.SerializeToString() for r in draw()]
    assert any(r.temperature > 100 or r.temperature != r.temperature for r in one)
    assert any(r.deadline_ms < 1e-6 for r in one if r.HasField("deadline_ms"))


def test_a_fuzzed_request_is_judged_by_the_deadline_the_server_applies():
    """The earliest of its deadline_ms, its class's and the client's 30 s gRPC deadline."""
    from dilaserve.cli.serve import DEFAULT_POLICY
    from dilaserve.policy.cluster_loader import load_cluster_policy
    from worker.client.messages import generate_request

    policy = load_cluster_policy(DEFAULT_POLICY).policy
    interactive = policy.slo_class("interactive").deadline_s(8)

    def deadline(**fields) -> float:
        return applied_deadline_s(generate_request("abc", 8, **fields), policy)

    assert deadline(slo_class="interactive") == pytest.approx(interactive)
    assert deadline(slo_class="interactive", deadline_ms=5000) == pytest.approx(interactive)
    assert deadline(slo_class="interactive", deadline_ms=1e-300) == pytest.approx(1e-303)
    assert deadline(slo_class="batch", deadline_ms=5000) == pytest.approx(5.0)
    assert deadline(slo_class="batch") == 30.0 and deadline(slo_class="batch",
                                                             deadline_ms=1e308) == 30.0
    assert deadline() == deadline(slo_class=policy.default_class)  # none named: the default
    for invalid in ({"slo_class": "gold"}, {"deadline_ms": float("nan")}):
        assert deadline(**invalid) == float("inf")


def test_fuzz_arrivals_are_all_at_once_or_poisson_at_the_rate():
    import random

    from dilaserve.benches.chaos import _arrival_times

    assert _arrival_times(3, None, random.Random(0)) == [0.0, 0.0, 0.0]
    times = _arrival_times(4000, 400.0, random.Random(0))
    assert times == sorted(times) and times[-1] == pytest.approx(10.0, rel=0.1)


@pytest.mark.parametrize("flags, message", [
    (["--fuzz", "-1"], "--fuzz: must be >= 0"),
    (["--overload", "0"], "--overload and --overload-s: must be > 0"),
    (["--fuzz-rate", "0"], "--fuzz-rate: must be > 0"),
])
def test_bad_arguments_are_one_line_errors(flags, message, capsys):
    assert main(["bench-chaos", *flags]) == 2
    assert message in capsys.readouterr().err
