"""The accuracy budget: each request starts at the threshold its predicted finish calls for,
admission predicts with that threshold, and a class's finished requests keep their mean drop
within its budget (the fake profile: accuracy 0.5 + 0.4 x tau, reference tau 1.0, so tau 0.9
costs 4 points and each 0.1 lower 4 more)."""

from __future__ import annotations

from dataclasses import replace

from sched_fakes import LIMITS, FakeEngine, drive, make_scheduler, spec

from dilaserve.core.steps import EngineLimits

TIGHT = 0.03  # ~60 steps at tau 0.9 do not fit, ~10 at 0.5 do


def budgeted(rid: str, budget: float | None, **kw):
    return replace(spec(rid, **kw), accuracy_budget=budget)


def test_a_request_starts_where_its_deadline_needs_and_no_lower() -> None:
    scheduler = make_scheduler()
    assert scheduler.submit(spec("loose", deadline=10.0, floor=0.5), 0.0).accepted
    assert scheduler.state("loose").threshold == 0.9
    decision = scheduler.submit(spec("tight", deadline=TIGHT, floor=0.5, canvas=64), 0.0)
    state = scheduler.state("tight")
    assert decision.accepted and 0.5 <= state.threshold < 0.9
    assert f"at threshold {state.threshold:g}" in decision.reason
    # a looser deadline starts higher, a tighter one lower: the load and slack decide
    starts = []
    for i, deadline in enumerate((TIGHT / 1.5, TIGHT, TIGHT * 1.5)):
        alone = make_scheduler()
        alone.submit(spec(f"d{i}", deadline=deadline, floor=0.5, canvas=64), 0.0)
        starts.append(alone.state(f"d{i}").threshold)
    assert starts == sorted(starts) and starts[0] < starts[-1]


def test_admission_predicts_with_what_the_budget_allows() -> None:
    # the start (0.9) already spends the whole budget: nothing lower is allowed, so a request
    # that only a lower threshold serves in time is refused rather than admitted to expire
    at_start = 0.04 + 1e-9
    tight = budgeted("tight", at_start, deadline=TIGHT, floor=0.5, canvas=64)
    decision = make_scheduler().submit(tight, 0.0)
    assert not decision.accepted and "budget" in decision.reason
    roomy = budgeted("roomy", 0.2, deadline=TIGHT, floor=0.5, canvas=64)
    assert make_scheduler().submit(roomy, 0.0).accepted


def test_the_running_mean_stays_within_the_budget_and_reservations_come_back() -> None:
    budget = 0.07  # 0.9 costs 0.04: room for some requests to go lower, not all
    limits = EngineLimits(max_rows=4, max_tokens=4 * 128, max_seq_len=256)
    scheduler = make_scheduler(limits)
    engine = FakeEngine(limits, seed=3)
    now, events = 0.0, []
    for i in range(60):
        now = i * 0.004
        scheduler.submit(budgeted(f"r{i}", budget, now=now, deadline=now + 0.08, floor=0.5),
                         now)
        new, now = drive(scheduler, engine, now, max_steps=3)
        events += new
    new, now = drive(scheduler, engine, now)
    events += new
    ledger = scheduler.budget.ledgers["default"]
    assert ledger.finished == sum(e.kind == "finished" for e in events) > 20
    assert 0.04 < ledger.mean_drop <= budget + 1e-9  # it spent, and no more than it had
    assert not ledger.active and ledger.reserved == 0.0


def test_without_a_budget_nothing_is_tracked() -> None:
    scheduler = make_scheduler()
    scheduler.submit(spec("a", deadline=TIGHT, floor=0.5, canvas=64), 0.0)
    drive(scheduler, FakeEngine(LIMITS))
    assert scheduler.budget.ledgers == {}
