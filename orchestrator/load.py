"""What the controller knows of the offered load: arrival rate and lengths per class, over a
sliding window of recent arrivals (pure; times are input)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Arrival:
    at_s: float
    slo_class: str
    prompt_len: int
    canvas_len: int


@dataclass(frozen=True)
class ClassLoad:
    name: str
    rate: float  # requests per second over the window
    prompt_mean: float
    prompt_p90: float
    canvas_mean: float
    canvas_p90: float
    samples: int
    lengths: tuple[tuple[int, int], ...] = ()  # recent (prompt, canvas) pairs, oldest first


class LoadEstimator:
    """Rate over the last `window_s` seconds; lengths over the last `length_samples` arrivals (a
    longer memory: lengths drift slowly, and a tail percentile needs many samples)."""

    def __init__(self, window_s: float = 120.0, length_samples: int = 4096) -> None:
        if window_s <= 0 or length_samples < 1:
            raise ValueError("LoadEstimator needs window_s > 0 and length_samples >= 1")
        self.window_s = window_s
        self._times: dict[str, deque[float]] = {}
        self._lengths: dict[str, deque[tuple[int, int]]] = {}
        self._length_samples = length_samples
        self._first_s: float | None = None

    def add(self, arrival: Arrival) -> None:
        if self._first_s is None:
            self._first_s = arrival.at_s
        self._times.setdefault(arrival.slo_class, deque()).append(arrival.at_s)
        self._lengths.setdefault(arrival.slo_class, deque(maxlen=self._length_samples)).append(
            (arrival.prompt_len, arrival.canvas_len))

    def classes(self) -> list[str]:
        return sorted(self._lengths)

    def load(self, name: str, now: float) -> ClassLoad | None:
        lengths = self._lengths.get(name)
        if not lengths:
            return None
        times = self._times[name]
        while times and times[0] < now - self.window_s:
            times.popleft()
        # before a whole window has passed, the rate is over the time observed so far
        first = now if self._first_s is None else self._first_s
        span = min(self.window_s, now - first)
        prompts = sorted(p for p, _ in lengths)
        canvases = sorted(c for _, c in lengths)
        return ClassLoad(name, len(times) / span if span >= 1.0 else 0.0,
                         sum(prompts) / len(prompts), _p90(prompts),
                         sum(canvases) / len(canvases), _p90(canvases), len(lengths),
                         tuple(lengths))


def _p90(values: list[int]) -> float:
    return float(values[min(len(values) - 1, int(0.9 * len(values)))])
