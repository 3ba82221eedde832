"""Property: whatever arrives, finishes, expires or is cancelled, every accepted request ends in
exactly one terminal event, and every plan is legal for the engine (the fake engine asserts it)."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sched_fakes import TRUE_COST, FakeEngine, make_quality, run_plan, spec

from dilaserve.core.steps import EngineLimits
from dilaserve.policy.scheduler_config import SchedulerConfig
from worker.scheduler import TerminalKind
from worker.scheduler.scheduler import Scheduler

requests = st.lists(st.fixed_dictionaries({
    "gap": st.integers(0, 4),  # steps after the previous arrival
    "prompt": st.integers(1, 64),
    "block": st.sampled_from([8, 16, 32]),
    "blocks": st.integers(1, 4),
    "deadline": st.one_of(st.just(math.inf), st.floats(0.0005, 0.3)),
    "best_effort": st.booleans(),
    "floor": st.sampled_from([None, 0.5, 0.7, 0.85]),
    "priority": st.integers(0, 2),
    "cache_mode": st.sampled_from(["dual", "dual", "prefix", "none"]),
    "wider": st.booleans(),
}), min_size=1, max_size=14)

configs = st.builds(
    SchedulerConfig,
    ordering=st.sampled_from(["fcfs", "edf"]),
    load_control=st.sampled_from(["none", "threshold", "threshold+block"]),
    max_refresh_rows=st.sampled_from([None, 1, 2, 4]),
    refresh_token_budget=st.sampled_from([None, 150, 400]),
    max_refresh_deferrals=st.integers(0, 3),
    raise_dwell_steps=st.integers(0, 3),
    admission=st.booleans(),
    admission_protects_queue=st.booleans(),
)

limits = st.builds(EngineLimits, max_rows=st.integers(1, 6), max_tokens=st.integers(100, 600),
                   max_seq_len=st.just(256))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests=requests, config=configs, limits=limits,
       cancels=st.lists(st.tuples(st.integers(0, 60), st.integers(0, 13)), max_size=6),
       eos=st.sampled_from([0.0, 0.3]), jitter=st.sampled_from([0.0, 0.3]),
       seed=st.integers(0, 2**16))
def test_every_accepted_request_ends_exactly_once(requests, config, limits, cancels, eos, jitter,
                                                  seed) -> None:
    scheduler = Scheduler(config, limits, make_quality(), TRUE_COST)
    engine = FakeEngine(limits, seed=seed, eos_chance=eos, jitter=jitter, admit_before_evict=True)
    arrivals, step = [], 0
    for i, r in enumerate(requests):
        step += r["gap"]
        arrivals.append((step, i, r))
    specs, accepted, events = {}, set(), []
    now, k = 0.0, 0
    while k < 3000:
        for at, i, r in arrivals:
            if at == k:
                s = spec(f"r{i}", now, deadline=now + r["deadline"], prompt=r["prompt"],
                         canvas=r["block"] * r["blocks"], floor=r["floor"], block=r["block"],
                         block_range=(r["block"], 64 if r["wider"] else r["block"]),
                         best_effort=r["best_effort"], priority=r["priority"],
                         cache_mode=r["cache_mode"])
                specs[s.request_id] = s
                decision = scheduler.submit(s, now)
                assert decision.reason
                if decision.accepted:
                    accepted.add(s.request_id)
        for at, i in cancels:
            if at == k:
                scheduler.cancel(f"r{i}")
        plan = scheduler.plan(now)
        for change in plan.changes:
            s = specs[change.request_id]
            if change.threshold is not None:
                assert s.floor <= change.threshold <= s.settings.threshold
            if change.block_size is not None:
                assert s.blocks[0] <= change.block_size <= s.blocks[1]
        ended, now = run_plan(scheduler, engine, plan, now)
        events += ended
        k += 1
        if k > arrivals[-1][0] and not scheduler.active_count:
            break
    events += scheduler.take_events()
    for e in events:
        event(f"ended {e.kind.value}")
    event("some rejected" if len(accepted) < len(requests) else "all accepted")

    assert not scheduler.active_count and not engine.rows, "requests left behind"
    ended = Counter(e.request_id for e in events)
    assert set(ended) == accepted and all(n == 1 for n in ended.values())
    for e in events:
        s = specs[e.request_id]
        assert e.threshold >= s.floor
        if e.kind is TerminalKind.EXPIRED:
            assert not s.best_effort and e.at_s >= s.deadline_s and not e.deadline_met
        if e.kind is TerminalKind.FINISHED:
            assert e.finish_reason is not None and e.deadline_met == (e.at_s <= s.deadline_s)
