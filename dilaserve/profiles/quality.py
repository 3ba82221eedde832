"""The quality profile: accuracy and tokens per step for each decoding setting of a model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dilaserve.profiles.json_file import JsonFile

QUALITY_SCHEMA = "dilaserve.profile.quality/v1"


@dataclass(frozen=True)
class QualityPoint:
    rule: str
    threshold: float
    block_size: int
    accuracy: float  # exact match over the held-out set, 0..1
    per_task: dict[str, float]
    answer_tokens_per_step: float  # answer content committed per forward (trailing EOS apart)
    tokens_per_step: float  # every committed canvas token per forward, trailing EOS included
    forwards_per_request: float
    # mean denoising steps (forwards) per request of each task; absent in older profiles
    per_task_forwards: dict[str, float] = field(default_factory=dict)
    interpolated: bool = False  # blended between measured neighbours, not measured itself


@dataclass(frozen=True)
class QualityProfile(JsonFile):
    model: str
    reference: QualityPoint
    points: tuple[QualityPoint, ...]
    heldout: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def threshold_points(self, block_size: int) -> list[QualityPoint]:
        pts = [p for p in self.points if p.rule == "threshold" and p.block_size == block_size]
        return sorted(pts, key=lambda p: p.threshold)

    def block_sizes(self) -> list[int]:
        return sorted({p.block_size for p in self.points if p.rule == "threshold"})

    def at(self, threshold: float, block_size: int) -> QualityPoint:
        """The measured point at this threshold, linearly interpolated between measured ones."""
        pts = self.threshold_points(block_size)
        if not pts:
            raise ValueError(f"quality profile of {self.model} has no block size {block_size}")
        if threshold <= pts[0].threshold:
            return pts[0]
        for lo, hi in zip(pts, pts[1:]):
            if threshold <= hi.threshold:
                w = (threshold - lo.threshold) / (hi.threshold - lo.threshold)
                return _blend(lo, hi, w, threshold)
        return pts[-1]

    def accuracy_drop(self, threshold: float, block_size: int) -> float:
        return self.reference.accuracy - self.at(threshold, block_size).accuracy

    def grid(self, block_size: int, step: float) -> list[QualityPoint]:
        """The measured points plus, every `step` between them, interpolated ones (marked
        `interpolated`): the settings a threshold ladder of that step lands on."""
        measured = self.threshold_points(block_size)
        if not measured:
            return []
        points = {round(p.threshold, 6): p for p in measured}
        lo, hi = measured[0].threshold, measured[-1].threshold
        k = 0
        while (t := round(hi - k * step, 6)) >= lo - 1e-9:
            points.setdefault(t, self.at(t, block_size))
            k += 1
        return [points[t] for t in sorted(points)]

    def lowest_threshold(self, max_drop: float, block_size: int) -> float:
        """The lowest measured threshold whose accuracy drop vs the reference is <= max_drop."""
        ok = [
            p.threshold
            for p in self.threshold_points(block_size)
            if self.reference.accuracy - p.accuracy <= max_drop + 1e-12
        ]
        return min(ok) if ok else self.reference.threshold

    def to_json(self) -> dict:
        return {
            "schema": QUALITY_SCHEMA,
            "model": self.model,
            "reference": _point_json(self.reference),
            "heldout": self.heldout,
            "provenance": self.provenance,
            "points": [_point_json(p) for p in self.points],
        }

    @classmethod
    def from_json(cls, data: dict) -> QualityProfile:
        if data.get("schema") != QUALITY_SCHEMA:
            raise ValueError(
                f"quality profile: schema is {data.get('schema')!r}, expected {QUALITY_SCHEMA!r}"
            )
        return cls(
            model=data["model"],
            reference=QualityPoint(**data["reference"]),
            points=tuple(QualityPoint(**p) for p in data["points"]),
            heldout=data.get("heldout", {}),
            provenance=data.get("provenance", {}),
        )


def _point_json(point: QualityPoint) -> dict:
    data = asdict(point)
    # measured points of older profiles keep the file format they always had
    if not point.interpolated:
        del data["interpolated"]
    if not point.per_task_forwards:
        del data["per_task_forwards"]
    return data


def _blend(lo: QualityPoint, hi: QualityPoint, w: float, threshold: float) -> QualityPoint:
    def mix(a: float, b: float) -> float:
        return a + (b - a) * w

    if w <= 0.0 or w >= 1.0:
        return lo if w <= 0.0 else hi
    return QualityPoint(
        rule=lo.rule,
        threshold=threshold,
        block_size=lo.block_size,
        accuracy=mix(lo.accuracy, hi.accuracy),
        per_task={t: mix(lo.per_task[t], hi.per_task.get(t, lo.per_task[t])) for t in lo.per_task},
        answer_tokens_per_step=mix(lo.answer_tokens_per_step, hi.answer_tokens_per_step),
        tokens_per_step=mix(lo.tokens_per_step, hi.tokens_per_step),
        forwards_per_request=mix(lo.forwards_per_request, hi.forwards_per_request),
        per_task_forwards={t: mix(f, hi.per_task_forwards.get(t, f))
                           for t, f in lo.per_task_forwards.items()},
        interpolated=True,
    )
