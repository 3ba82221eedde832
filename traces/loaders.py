"""Reading traces from files: the Azure LLM inference trace (CSV) and the Mooncake format (JSONL).

Azure (2023 and 2024 releases): a header `TIMESTAMP,ContextTokens,GeneratedTokens` and one request
per row; TIMESTAMP is a date-time like `2023-11-16 18:15:46.6805900`.
Mooncake: one JSON object per line with `timestamp` (milliseconds since the trace's start),
`input_length` and `output_length`; other keys (`hash_ids`) are ignored. An optional `slo_class`
key names the request's SLO class.

Arrivals are shifted so that the first request arrives at 0 and sorted (stable). A bad row raises a
ValueError naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path

from traces.records import DEFAULT_CLASS, Trace, TraceRequest

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def load_trace(path: str | Path) -> Trace:
    """By suffix: `.csv` is an Azure trace, `.jsonl` / `.json` a Mooncake one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trace: no such file {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return load_azure_csv(path)
    if suffix in (".jsonl", ".json"):
        return load_mooncake_jsonl(path)
    raise ValueError(f"trace {path}: unknown format {suffix!r} (expected .csv for the Azure "
                     f"format or .jsonl for the Mooncake format)")


def _count(value: object, where: str, field: str, *, minimum: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{where}: field {field}: expected a whole number, got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"{where}: field {field}: expected a whole number, "
                             f"got {value!r}") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"{where}: field {field}: expected a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{where}: field {field}: must be >= {minimum}, got {value}")
    return value


def load_azure_csv(path: str | Path) -> Trace:
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file (expected the header {','.join(AZURE_COLUMNS)})")
        header = [h.strip() for h in header]
        missing = [c for c in AZURE_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path} line 1: header lacks column(s) {missing}; "
                             f"expected {','.join(AZURE_COLUMNS)}, got {','.join(header)}")
        col = {c: header.index(c) for c in AZURE_COLUMNS}
        raw: list[tuple[float, int, int]] = []
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            where = f"{path} line {line_no}"
            if len(row) < len(header):
                raise ValueError(f"{where}: expected {len(header)} fields, got {len(row)}")
            stamp = row[col["TIMESTAMP"]].strip()
            try:
                t = datetime.fromisoformat(stamp).timestamp()
            except ValueError:
                raise ValueError(f"{where}: field TIMESTAMP: expected a date-time like "
                                 f"2023-11-16 18:15:46.6805900, got {stamp!r}") from None
            raw.append((t, _count(row[col["ContextTokens"]], where, "ContextTokens", minimum=0),
                        _count(row[col["GeneratedTokens"]], where, "GeneratedTokens",
                               minimum=0)))
    return _build(path, "azure", raw, [DEFAULT_CLASS] * len(raw))


def load_mooncake_jsonl(path: str | Path) -> Trace:
    path = Path(path)
    raw: list[tuple[float, int, int]] = []
    classes: list[str] = []
    with path.open() as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path} line {line_no}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON: {err.msg}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            for key in ("timestamp", "input_length", "output_length"):
                if key not in obj:
                    raise ValueError(f"{where}: field {key}: missing")
            stamp = obj["timestamp"]
            if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) \
                    or not math.isfinite(stamp) or stamp < 0:
                raise ValueError(f"{where}: field timestamp: expected milliseconds >= 0, "
                                 f"got {stamp!r}")
            cls = obj.get("slo_class", DEFAULT_CLASS)
            if not isinstance(cls, str) or not cls:
                raise ValueError(f"{where}: field slo_class: expected a non-empty string, "
                                 f"got {cls!r}")
            raw.append((stamp / 1000.0, _count(obj["input_length"], where, "input_length",
                                               minimum=0),
                        _count(obj["output_length"], where, "output_length", minimum=0)))
            classes.append(cls)
    return _build(path, "mooncake", raw, classes)


def _build(path: Path, kind: str, raw: list[tuple[float, int, int]],
           classes: list[str]) -> Trace:
    if not raw:
        raise ValueError(f"{path}: no requests")
    order = sorted(range(len(raw)), key=lambda i: raw[i][0])
    t0 = raw[order[0]][0]
    requests = tuple(TraceRequest(raw[i][0] - t0, raw[i][1], raw[i][2], classes[i])
                     for i in order)
    return Trace(path.stem, requests, source=f"{kind}:{path}",
                 notes=(f"loaded {len(requests)} requests ({kind} format)",))
