"""Numbers and tables for people (`dilaserve status`, the demo): rounded, no negative zero, NaN
and missing values as "-", columns aligned. `--json` prints the raw data for machines."""

from __future__ import annotations

import math
from collections.abc import Sequence


def num(value: float | int | None, digits: int = 1) -> str:
    """A number rounded for people; "-" for None or NaN; never "-0"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:,.{digits}f}"
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0 else text


def pct(value: float | None, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "-"
    return num(100 * value, digits) + "%"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Left-aligned first column, right-aligned others."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        parts = [str(cells[0]).ljust(widths[0])]
        parts += [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return indent + "  ".join(parts).rstrip()

    return [line(header), *(line(r) for r in rows)]


CLASS_HEADER = ("class", "requests", "ended", "met", "attain", "target", "late", "expired",
                "shed", "rejected", "cancelled", "failed", "invalid")


def class_rows(classes: dict[str, dict]) -> list[list[str]]:
    return [[name, num(c.get("requests", 0)), num(c.get("ended", 0)), num(c.get("met", 0)),
             pct(c.get("attainment")), pct(c.get("target_attainment"), 0),
             *(num(c.get(k, 0)) for k in ("late", "expired", "shed", "rejected", "cancelled",
                                          "failed", "invalid"))]
            for name, c in sorted(classes.items())]


def write_json(data: object, target: str | None, **dumps_options) -> None:
    """A command's `--json TARGET`: `data` as indented JSON to the file TARGET, or to stdout when
    TARGET is "-"; nothing when there is no target."""
    import json

    if not target:
        return
    text = json.dumps(data, indent=2, **dumps_options)
    if str(target) == "-":
        print(text)
    else:
        with open(target, "w") as f:
            f.write(text + "\n")
