"""The router's own count of how requests ended, per SLO class (thread-safe).

Attainment counts as the worker's Stats do: a request "ends" when it finished (met or late),
expired, or was refused (shed by the router, refused at its call limit, or rejected by every
replica it was offered to); cancelled ones (the client's doing), failed ones (errors, nothing
could take it) and invalid ones are counted apart, as a client counts them (docs/reliability.md).
The router counts each request once, however many replicas it went through.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field


class Ending(enum.StrEnum):
    MET = "met"  # final message within the deadline
    LATE = "late"  # final message after it (best-effort classes)
    EXPIRED = "expired"  # DEADLINE_EXCEEDED
    SHED = "shed"  # the router refused it: no replica predicted to make the deadline
    OVERLOADED = "overloaded"  # the router refused it at once: at its call limit (overload.py)
    REJECTED = "rejected"  # every replica the router offered a new request to refused it
    CANCELLED = "cancelled"  # the client cancelled, or its gRPC deadline passed
    FAILED = "failed"  # any other error (a worker's; nothing could take it, or take it back)
    INVALID = "invalid"  # INVALID_ARGUMENT (from the router or the worker)


COUNTED = (Ending.MET, Ending.LATE, Ending.EXPIRED, Ending.SHED, Ending.OVERLOADED,
           Ending.REJECTED)
REFUSED_AT_ARRIVAL = (Ending.SHED, Ending.OVERLOADED)  # by the router itself, before any replica


@dataclass
class ClassBook:
    name: str
    target_attainment: float
    requests: int = 0
    endings: dict[Ending, int] = field(default_factory=dict)

    @property
    def ended(self) -> int:
        return sum(self.endings.get(e, 0) for e in COUNTED)

    @property
    def met(self) -> int:
        return self.endings.get(Ending.MET, 0)

    @property
    def attainment(self) -> float:
        return self.met / self.ended if self.ended else 1.0

    def count(self, ending: Ending) -> int:
        return self.endings.get(ending, 0)


@dataclass(frozen=True)
class BookSnapshot:
    classes: tuple[ClassBook, ...]
    routed: int  # requests sent to a first replica
    restarts: int
    invalid: int  # refused as malformed before a class was known (bytes that do not parse too)
    # finals whose prompt_tokens differ from the router's own count: the router's tokenizer is
    # not the replicas' (cluster.model / --model names another model)
    token_mismatches: int = 0

    def total(self, *endings: Ending) -> int:
        return sum(c.count(e) for c in self.classes for e in endings)

    @property
    def requests(self) -> int:
        return sum(c.requests for c in self.classes)

    @property
    def ended(self) -> int:
        return sum(c.ended for c in self.classes)

    @property
    def attainment(self) -> float:
        ended = self.ended
        return self.total(Ending.MET) / ended if ended else 1.0


class RouterBook:
    def __init__(self, targets: dict[str, float]) -> None:
        self._lock = threading.Lock()
        self._classes: dict[str, ClassBook] = {}
        self._routed = 0
        self._restarts = 0
        self._invalid = 0
        self._token_mismatches = 0
        self.set_targets(targets)

    def set_targets(self, targets: dict[str, float]) -> None:
        """Classes of a (re)loaded policy; counts of classes it dropped are kept."""
        with self._lock:
            for name, target in targets.items():
                book = self._classes.setdefault(name, ClassBook(name, target))
                book.target_attainment = target

    def arrived(self, slo_class: str) -> None:
        with self._lock:
            self._book(slo_class).requests += 1

    def routed(self) -> None:
        with self._lock:
            self._routed += 1

    def restarted(self) -> None:
        with self._lock:
            self._restarts += 1

    def invalid(self) -> None:
        with self._lock:
            self._invalid += 1

    def token_mismatch(self) -> None:
        with self._lock:
            self._token_mismatches += 1

    def ended(self, slo_class: str, ending: Ending) -> None:
        with self._lock:
            endings = self._book(slo_class).endings
            endings[ending] = endings.get(ending, 0) + 1

    def snapshot(self) -> BookSnapshot:
        with self._lock:
            classes = tuple(
                ClassBook(c.name, c.target_attainment, c.requests, dict(c.endings))
                for c in self._classes.values()
            )
            return BookSnapshot(classes, self._routed, self._restarts, self._invalid,
                                self._token_mismatches)

    def _book(self, name: str) -> ClassBook:
        book = self._classes.get(name)
        if book is None:
            book = self._classes[name] = ClassBook(name, 0.0)
        return book
