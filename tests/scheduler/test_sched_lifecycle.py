from __future__ import annotations

import pytest
from sched_fakes import TRUE_COST, FakeEngine, drive, make_scheduler, spec

from dilaserve.core.steps import (
    EngineLimits,
    FinishReason,
    Phase,
    RowOutcome,
    StepFeatures,
    StepResult,
)
from dilaserve.profiles.online import OnlineStepCost
from dilaserve.profiles.step_cost import StepCostModel
from worker.scheduler import TerminalKind, plan_has_work

ONE_ROW = EngineLimits(max_rows=1, max_tokens=1024, max_seq_len=256)


def outcome(rid: str, committed: int = 4, masked_left: int = 60, *, block_finished: bool = False,
            done: bool = False, phase: Phase = Phase.REUSE, output: tuple[int, ...] = ()):
    return RowOutcome(rid, phase, committed, masked_left, block_finished, done,
                      FinishReason.EOS if done else None, output_ids=output)


def result(*outcomes: RowOutcome) -> StepResult:
    return StepResult(tuple(outcomes), 0.002, StepFeatures(2, 96, 16, 10_000))


def test_finished_event_carries_output_and_reason() -> None:
    scheduler = make_scheduler()
    assert scheduler.submit(spec("a", deadline=1.0), 0.0).accepted
    plan = scheduler.plan(0.0)
    assert [a.request_id for a in plan.admit] == ["a"] and plan.run == ("a",)
    assert scheduler.observe(result(outcome("a", phase=Phase.REFRESH)), 0.01) == []
    scheduler.plan(0.01)
    events = scheduler.observe(result(outcome("a", 60, 0, block_finished=True, done=True,
                                              output=(5, 6, 7))), 0.02)
    assert len(events) == 1
    event = events[0]
    assert event.kind is TerminalKind.FINISHED and event.output_ids == (5, 6, 7)
    assert event.finish_reason is FinishReason.EOS and event.deadline_met and event.steps == 2
    assert scheduler.active_count == 0


def test_outcomes_drive_the_block_geometry_and_phase() -> None:
    scheduler = make_scheduler()
    scheduler.submit(spec("a", canvas=64, block=16), 0.0)
    scheduler.plan(0.0)
    state = scheduler.state("a")
    assert state.next_phase is Phase.REFRESH
    scheduler.observe(result(outcome("a", 10, 54, phase=Phase.REFRESH)), 0.0)
    assert state.next_phase is Phase.REUSE and state.block_start == 0
    scheduler.plan(0.0)
    scheduler.observe(result(outcome("a", 6, 48, block_finished=True)), 0.0)
    assert state.next_phase is Phase.REFRESH and state.block_start == 16
    assert state.steps == 2 and state.committed == 16 and state.refreshes == 1


def test_expired_resident_request_is_evicted_and_reported_after_the_eviction() -> None:
    scheduler = make_scheduler()
    assert scheduler.submit(spec("a", deadline=0.5), 0.0).accepted
    assert scheduler.plan(0.0).run == ("a",)
    scheduler.observe(result(outcome("a")), 0.01)
    plan = scheduler.plan(0.6)
    assert plan.evict == ("a",) and "a" not in plan.run and plan_has_work(plan)
    assert scheduler.take_events() == []  # the engine has not dropped it yet
    events = scheduler.observe(result(), 0.61)
    assert [(e.request_id, e.kind) for e in events] == [("a", TerminalKind.EXPIRED)]
    assert not events[0].deadline_met and scheduler.active_count == 0


def test_expired_queued_request_is_reported_without_the_engine() -> None:
    scheduler = make_scheduler(ONE_ROW, admission=False)
    scheduler.submit(spec("running", deadline=1.0), 0.0)
    scheduler.submit(spec("waiting", deadline=0.2), 0.0)
    assert scheduler.plan(0.0).run == ("waiting",)  # edf
    scheduler.observe(result(outcome("waiting")), 0.01)
    scheduler.submit(spec("queued", deadline=0.1), 0.01)
    plan = scheduler.plan(0.15)  # "queued" expires in the queue: no eviction needed
    assert plan.evict == () and plan.run == ("waiting",)
    events = scheduler.take_events()
    assert [(e.request_id, e.kind) for e in events] == [("queued", TerminalKind.EXPIRED)]
    assert scheduler.queued_ids == ("running",)


def test_best_effort_request_runs_past_its_deadline_and_finishes_late() -> None:
    scheduler = make_scheduler(admission=False)
    scheduler.submit(spec("a", deadline=0.001, best_effort=True), 0.0)
    engine = FakeEngine(scheduler.limits)
    events, _ = drive(scheduler, engine)
    assert [(e.kind, e.deadline_met) for e in events] == [(TerminalKind.FINISHED, False)]


def test_cancel_queued_and_resident_requests() -> None:
    scheduler = make_scheduler(max_refresh_rows=1)
    scheduler.submit(spec("resident"), 0.0)
    scheduler.submit(spec("queued"), 0.0)
    plan = scheduler.plan(0.0)
    assert plan.run == ("resident",)
    scheduler.observe(result(outcome("resident")), 0.0)
    assert scheduler.cancel("resident") and scheduler.cancel("queued")
    assert scheduler.cancel("queued")  # asking twice is harmless
    assert not scheduler.cancel("unknown")
    plan = scheduler.plan(0.0)
    assert plan.evict == ("resident",) and not plan.run and not plan.admit
    queued_events = scheduler.take_events()
    assert [(e.request_id, e.kind) for e in queued_events] == [("queued", TerminalKind.CANCELLED)]
    events = scheduler.observe(result(), 0.0)
    assert [(e.request_id, e.kind) for e in events] == [("resident", TerminalKind.CANCELLED)]
    assert scheduler.active_count == 0 and not scheduler.cancel("resident")


def test_cancel_racing_the_last_step_ends_in_one_event() -> None:
    scheduler = make_scheduler()
    scheduler.submit(spec("a"), 0.0)
    scheduler.plan(0.0)
    assert scheduler.cancel("a")  # arrives while the finishing step is in flight
    events = scheduler.observe(result(outcome("a", 64, 0, block_finished=True, done=True)), 0.0)
    assert [e.kind for e in events] == [TerminalKind.FINISHED]
    assert not plan_has_work(scheduler.plan(0.0)) and scheduler.take_events() == []


def test_protocol_misuse_is_refused() -> None:
    scheduler = make_scheduler()
    scheduler.submit(spec("a"), 0.0)
    scheduler.plan(0.0)
    with pytest.raises(RuntimeError, match="before observe"):
        scheduler.plan(0.0)
    with pytest.raises(ValueError, match="reported rows"):
        scheduler.observe(result(outcome("ghost")), 0.0)
    with pytest.raises(ValueError, match="reported rows"):
        scheduler.observe(result(outcome("a"), outcome("a")), 0.0)
    assert scheduler.in_flight  # a bad result changes nothing: the right one can still come
    scheduler.observe(result(outcome("a")), 0.0)
    with pytest.raises(ValueError, match="no plan is in flight"):
        scheduler.observe(result(outcome("a")), 0.0)


def test_observe_refines_an_online_step_cost() -> None:
    cost = OnlineStepCost(StepCostModel(tuple(2 * c for c in TRUE_COST.coef)))
    scheduler = make_scheduler(cost=cost, admission=False)
    for i in range(6):
        scheduler.submit(spec(f"r{i}"), 0.0)
    drive(scheduler, FakeEngine(scheduler.limits))
    assert cost.updates > 20
    assert cost.errors()[0] > 0.5 and cost.median_abs_rel_error() < 0.2
