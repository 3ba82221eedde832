"""Which request goes first: priority tiers, then arrival (fcfs) or least slack (edf).

Tiers, most urgent first: not demoted before demoted (a best-effort request accepted although
infeasible, or whose deadline has passed, spends capacity no deadline depends on), then higher
priority. Within a tier fcfs orders by acceptance, edf by slack = deadline - now - predicted
remaining time; ties go by acceptance order, so both orders are total and deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.scheduler.requests import RequestState

OrderKey = tuple[bool, int, float, int]


def slack(state: RequestState, now: float, step_s: float) -> float:
    """Seconds to spare if the request ran every step from now on (negative: predicted late)."""
    return state.deadline_s - now - state.steps_left * step_s


def order_key(state: RequestState, ordering: str, now: float, step_s: float) -> OrderKey:
    if ordering == "edf":
        primary = slack(state, now, step_s)
    else:
        primary = float(state.seq)
    return (state.demoted, -state.spec.priority, primary, state.seq)


def refresh_order(
    states: Iterable[RequestState], ordering: str, now: float, step_s: float, max_deferrals: int
) -> list[RequestState]:
    """Refresh candidates in order; rows deferred `max_deferrals` times already go first, so the
    refresh bound cannot starve a row."""
    return sorted(
        states, key=lambda s: (s.deferrals < max_deferrals, order_key(s, ordering, now, step_s))
    )
