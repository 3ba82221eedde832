from __future__ import annotations

from sched_fakes import make_scheduler, spec

from dilaserve.core.steps import EngineLimits

ONE_ROW = EngineLimits(max_rows=1, max_tokens=1024, max_seq_len=256)


def first_admitted(ordering: str, *specs) -> str:
    scheduler = make_scheduler(ONE_ROW, ordering=ordering, admission=False)
    for s in specs:
        assert scheduler.submit(s, s.arrival_s).accepted
    plan = scheduler.plan(0.01)
    assert len(plan.admit) == 1 and plan.run == (plan.admit[0].request_id,)
    return plan.admit[0].request_id


def test_fcfs_takes_the_first_arrival_and_edf_the_least_slack() -> None:
    relaxed = spec("relaxed", 0.0, deadline=10.0)
    urgent = spec("urgent", 0.001, deadline=1.0)
    assert first_admitted("fcfs", relaxed, urgent) == "relaxed"
    assert first_admitted("edf", relaxed, urgent) == "urgent"


def test_edf_slack_counts_predicted_work_not_only_the_deadline() -> None:
    short = spec("short", 0.0, deadline=0.5, canvas=32)
    long = spec("long", 0.001, deadline=0.5, canvas=192)  # same deadline, far more steps left
    assert first_admitted("edf", short, long) == "long"


def test_priority_tier_comes_before_either_order() -> None:
    urgent = spec("urgent", 0.0, deadline=0.5)
    important = spec("important", 0.001, deadline=10.0, priority=1)
    assert first_admitted("fcfs", urgent, important) == "important"
    assert first_admitted("edf", urgent, important) == "important"


def test_infeasible_best_effort_is_demoted_behind_the_rest() -> None:
    scheduler = make_scheduler(ONE_ROW, ordering="fcfs")
    hopeless = spec("hopeless", 0.0, deadline=0.001, canvas=192, best_effort=True)
    assert scheduler.submit(hopeless, 0.0).verdict.value == "best_effort"
    assert scheduler.submit(spec("normal", 0.0, deadline=5.0), 0.0).accepted
    assert scheduler.plan(0.0).admit[0].request_id == "normal"
