from __future__ import annotations

from sched_fakes import FakeEngine, drive, make_scheduler, spec

from dilaserve.core.steps import EngineLimits
from worker.scheduler import Verdict

ONE_ROW = EngineLimits(max_rows=1, max_tokens=1024, max_seq_len=256)


def test_feasible_request_is_accepted_with_its_prediction() -> None:
    scheduler = make_scheduler()
    decision = scheduler.submit(spec("a", deadline=1.0), 0.0)
    assert decision.verdict is Verdict.ACCEPTED and decision.reason.startswith("accepted")
    assert 0 < decision.predicted_finish_s < 1.0


def test_infeasible_request_is_rejected_at_once_and_best_effort_is_admitted() -> None:
    scheduler = make_scheduler()
    rejected = scheduler.submit(spec("tight", deadline=0.005, floor=0.6), 0.0)
    assert rejected.verdict is Verdict.REJECTED and not rejected.accepted
    assert "infeasible even at the lowest threshold its floor and budget allow" in rejected.reason
    assert "0.6" in rejected.reason and scheduler.state("tight") is None
    soft = scheduler.submit(spec("soft", deadline=0.005, floor=0.6, best_effort=True), 0.0)
    assert soft.verdict is Verdict.BEST_EFFORT and soft.accepted
    assert "best-effort" in soft.reason and scheduler.state("soft").demoted


def test_the_floor_counts_only_when_load_control_can_reach_it() -> None:
    # ~60 steps at 0.9 vs ~10 at 0.5: a deadline in between
    tight = spec("a", deadline=0.03, floor=0.5, canvas=64)
    assert make_scheduler(load_control="threshold").submit(tight, 0.0).accepted
    assert not make_scheduler(load_control="none").submit(tight, 0.0).accepted


def test_work_ahead_in_the_queue_counts() -> None:
    for ordering, accepted in (("fcfs", False), ("edf", True)):
        scheduler = make_scheduler(ONE_ROW, ordering=ordering)
        for i in range(5):  # no deadline: accepted, and in fcfs ahead of any later arrival
            assert scheduler.submit(spec(f"bulk{i}", canvas=128), 0.0).accepted
        alone = make_scheduler(ONE_ROW).submit(spec("x", deadline=0.08), 0.0)
        assert alone.accepted
        decision = scheduler.submit(spec("x", deadline=0.08), 0.0)
        assert decision.accepted is accepted, (ordering, decision.reason)
        if not accepted:
            assert "wait" in decision.reason


def test_an_urgent_arrival_that_would_make_a_queued_request_late_is_refused() -> None:
    scheduler = make_scheduler(ONE_ROW, ordering="edf")
    assert scheduler.submit(spec("first", deadline=0.09), 0.0).accepted
    urgent = scheduler.submit(spec("urgent", deadline=0.06), 0.0)
    assert not urgent.accepted and "would make first late" in urgent.reason
    relaxed = make_scheduler(ONE_ROW, ordering="edf", admission_protects_queue=False)
    assert relaxed.submit(spec("first", deadline=0.09), 0.0).accepted
    assert relaxed.submit(spec("urgent", deadline=0.06), 0.0).accepted


def test_requests_the_engine_cannot_hold_or_duplicate_ids_are_rejected() -> None:
    scheduler = make_scheduler(admission=False)
    too_long = scheduler.submit(spec("long", prompt=200, canvas=64), 0.0)
    assert not too_long.accepted and "max_seq_len" in too_long.reason
    assert scheduler.submit(spec("a"), 0.0).accepted
    duplicate = scheduler.submit(spec("a"), 0.0)
    assert not duplicate.accepted and "already active" in duplicate.reason


def test_passed_deadline_and_admission_off() -> None:
    scheduler = make_scheduler()
    late = scheduler.submit(spec("late", deadline=0.5), 1.0)
    assert not late.accepted and "already passed" in late.reason
    assert scheduler.submit(spec("late_be", deadline=0.5, best_effort=True), 1.0).accepted
    off = make_scheduler(admission=False).submit(spec("x", deadline=1e-6), 0.0)
    assert off.accepted and "off" in off.reason


def test_accepted_requests_mostly_meet_their_deadlines_under_overload() -> None:
    scheduler = make_scheduler(ordering="edf", load_control="threshold")
    engine = FakeEngine(scheduler.limits, seed=3, jitter=0.1)
    now, accepted, events = 0.0, 0, []
    for i in range(60):  # arrivals at ~3x what the engine can serve at 0.9
        accepted += scheduler.submit(spec(f"r{i}", now, deadline=now + 0.08, floor=0.6),
                                     now).accepted
        for _ in range(2):
            plan = scheduler.plan(now)
            result = engine.step(plan)
            now += result.elapsed_s
            events += scheduler.observe(result, now)
    more, _ = drive(scheduler, engine, now)
    events += more
    met = sum(e.deadline_met for e in events)
    assert len(events) == accepted and 0 < accepted < 60
    assert met >= 0.9 * accepted


def test_a_queue_of_short_requests_waits_for_the_refresh_bound_not_for_slots() -> None:
    """Rows are free, but a queued request joins the batch through a refresh step, at most
    max_refresh_rows a step: behind 12 queued ones, an arrival waits 3 steps with a bound of 4
    and none without one."""
    waits = {}
    for bound in (4, None):
        scheduler = make_scheduler(EngineLimits(max_rows=32, max_tokens=32 * 64, max_seq_len=64),
                                   ordering="fcfs", max_refresh_rows=bound)
        for i in range(12):
            assert scheduler.submit(spec(f"q{i}", canvas=16, block=16), 0.0).accepted
        decision = scheduler.submit(spec("new", deadline=10.0, canvas=16, block=16), 0.0)
        assert decision.accepted
        waits[bound] = decision.reason.split("(wait ")[1].split(" ")[0]
    assert waits == {4: "3", None: "0"}
