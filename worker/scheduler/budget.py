"""The accuracy budget: a class's finished requests keep their mean accuracy drop within the class's
`accuracy_budget`, and the scheduler spends it where it buys attainment.

A request's drop is token-weighted, as accuracy is measured: each committed token carries the drop
(against the quality profile's reference) of the threshold it was committed at. The ledger of a
class holds
  spent    = the sum of its finished requests' drops, over `finished` of them,
  reserved = the sum of its active requests' planned drops (what each would end with if it kept its
             current threshold for the rest of its canvas),
and a request may plan a drop up to
  room = budget x (finished + active) - spent - (reserved without its own),
so that every active request could finish as planned and the mean still be within the budget.
Requests served at the reference threshold (light load) each add a budget's worth of room and
spend nothing: that credit is what a burst spends. A request that ends unfinished (expired,
cancelled, failed) gives its reservation back, and counts in no mean.

Requests without a budget, or with nothing to choose (a one-rung ladder), are not tracked: every
check allows them (the behaviour before budgets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dilaserve.profiles.quality import QualityProfile
from worker.scheduler.requests import RequestState

EPS = 1e-12


@dataclass
class Ledger:
    budget: float
    finished: int = 0
    spent: float = 0.0
    reserved: float = 0.0
    active: set[str] = field(default_factory=set)

    @property
    def mean_drop(self) -> float:
        return self.spent / self.finished if self.finished else 0.0


class Budget:
    def __init__(self, quality: QualityProfile) -> None:
        self.quality = quality
        self.ledgers: dict[str, Ledger] = {}
        self._blocks = tuple(quality.block_sizes())
        self._drops: dict[tuple[float, int], float] = {}

    def drop(self, threshold: float, block: int) -> float:
        """The accuracy drop (0..1) of this setting against the reference (never negative)."""
        key = (threshold, block)
        value = self._drops.get(key)
        if value is None:
            if self._blocks:
                nearest = min(self._blocks, key=lambda b: (abs(b - block), b))
                value = max(0.0, self.quality.accuracy_drop(threshold, nearest))
            else:
                value = 0.0
            self._drops[key] = value
        return value

    def tracks(self, state: RequestState) -> bool:
        return state.spec.accuracy_budget is not None and len(state.threshold_rungs) > 1

    def planned_drop(self, state: RequestState, threshold: float) -> float:
        """The request's drop if it ran the rest of its canvas at this threshold."""
        total = state.committed + state.masked_left
        if total <= 0:
            return 0.0
        rest = self.drop(threshold, state.block_size) * state.masked_left
        return (state.drop_committed + rest) / total

    def room(self, state: RequestState) -> float:
        """The largest drop this request may plan (inf: it has no budget)."""
        if not self.tracks(state):
            return math.inf
        ledger = self._ledger(state)
        mine = state.request_id in ledger.active
        count = ledger.finished + len(ledger.active) + (0 if mine else 1)
        others = ledger.reserved - (state.planned_drop if mine else 0.0)
        return ledger.budget * count - ledger.spent - others

    def allows(self, state: RequestState, threshold: float) -> bool:
        if not self.tracks(state):
            return True
        return self.planned_drop(state, threshold) <= self.room(state) + EPS

    # -- the ledger -------------------------------------------------------------------------------

    def admit(self, state: RequestState) -> None:
        """An accepted request reserves its planned drop at its starting threshold."""
        if not self.tracks(state):
            return
        ledger = self._ledger(state)
        state.planned_drop = self.planned_drop(state, state.threshold)
        ledger.reserved += state.planned_drop
        ledger.active.add(state.request_id)

    def retarget(self, state: RequestState) -> None:
        """Its threshold changed: its reservation follows."""
        ledger = self.ledgers.get(state.spec.slo_class)
        if ledger is None or state.request_id not in ledger.active:
            return
        planned = self.planned_drop(state, state.threshold)
        ledger.reserved += planned - state.planned_drop
        state.planned_drop = planned

    def commit(self, state: RequestState, tokens: int) -> None:
        """Tokens committed at the request's current threshold (its planned drop is unchanged)."""
        if tokens and state.spec.accuracy_budget is not None:
            state.drop_committed += tokens * self.drop(state.threshold, state.block_size)

    def end(self, state: RequestState, finished: bool) -> None:
        ledger = self.ledgers.get(state.spec.slo_class)
        if ledger is None or state.request_id not in ledger.active:
            return
        ledger.active.discard(state.request_id)
        ledger.reserved -= state.planned_drop
        if not ledger.active:
            ledger.reserved = 0.0  # no drift of float sums across an idle moment
        if finished and state.committed > 0:
            ledger.finished += 1
            ledger.spent += state.drop_committed / state.committed

    def _ledger(self, state: RequestState) -> Ledger:
        name = state.spec.slo_class
        ledger = self.ledgers.get(name)
        if ledger is None:
            ledger = self.ledgers[name] = Ledger(float(state.spec.accuracy_budget or 0.0))
        return ledger
