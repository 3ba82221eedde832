"""Checks of frozen config records, with messages that name the field."""

from __future__ import annotations


def check_ranges(record: object, where: str, *, positive: tuple[str, ...] = (),
                 non_negative: tuple[str, ...] = (), fraction: tuple[str, ...] = ()) -> None:
    """Raises ValueError naming `where.field` for the first field out of its range:
    `positive` > 0, `non_negative` >= 0, `fraction` in (0, 1]."""
    for name in positive:
        if not getattr(record, name) > 0:
            raise ValueError(f"{where}.{name} must be > 0, got {getattr(record, name)!r}")
    for name in non_negative:
        if not getattr(record, name) >= 0:
            raise ValueError(f"{where}.{name} must be >= 0, got {getattr(record, name)!r}")
    for name in fraction:
        if not 0 < getattr(record, name) <= 1:
            raise ValueError(f"{where}.{name} must be in (0, 1], got {getattr(record, name)!r}")


def check_unique(names: list[str], message: str) -> None:
    """Raises ValueError "`message`, repeated: [...]" when a name appears more than once."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{message}, repeated: {repeated}")
