"""Reading a policy file: YAML -> pydantic (`schema`) -> frozen dataclasses (`types`).

Errors are ValueErrors that name the file, the line and the field, one line per problem:
    policy.yaml:7: classes[0].deadline.ms: Input should be greater than 0 (got -5)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import ValidationError

from dilaserve.policy.schema import PolicyModel, SloClassModel
from dilaserve.policy.types import Policy, SloClass, ThresholdRange, WorkerSettings

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=PolicyModel)
_FIELD_PREFIX = re.compile(r"^(?:SchedulerConfig\.)?([a-z_]+)[: ]")


def load_policy(path: Path | str, model: type[PolicyModel] = PolicyModel) -> Policy:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy: no such file {str(path)!r}")
    return parse_policy(path.read_text(), str(path), model)


def parse_policy(
    text: str, source: str = "policy", model: type[PolicyModel] = PolicyModel
) -> Policy:
    return to_policy(validate_text(text, source, model))


def validate_text(text: str, source: str, model: type[M]) -> M:
    """YAML text -> the validated pydantic model, or a ValueError naming file, line and field."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a policy is a mapping with classes and default_class")
    lines = line_index(root)
    try:
        validated = model.model_validate(data)
    except ValidationError as err:
        problems = [_describe(e, lines, source, data) for e in err.errors()]
        raise ValueError("\n".join(problems)) from None
    return validated


def to_policy(m: PolicyModel) -> Policy:
    w = m.worker
    worker = WorkerSettings(
        threshold_range=ThresholdRange(w.threshold_range.min, w.threshold_range.max),
        block_size=w.block_size,
        cache_mode=w.cache_mode,
        max_new_tokens=w.max_new_tokens,
        max_rows=w.max_rows,
        max_tokens=w.max_tokens,
        scheduler=w.scheduler,
    )
    return Policy(tuple(to_slo_class(c) for c in m.classes), m.default_class, worker)


def to_slo_class(c: SloClassModel) -> SloClass:
    floor = c.quality_floor
    return SloClass(
        name=c.name,
        deadline_ms=c.deadline.ms if c.deadline else None,
        deadline_per_token_ms=c.deadline.per_token_ms if c.deadline else None,
        target_attainment=c.target_attainment,
        min_threshold=floor.min_threshold if floor else None,
        max_accuracy_drop=floor.max_accuracy_drop if floor else None,
        mean_accuracy_drop=floor.mean_accuracy_drop if floor else None,
        priority=c.priority,
        best_effort=c.best_effort,
    )


def line_index(node: yaml.Node | None, path: Loc = ()) -> dict[Loc, int]:
    """1-based line of every mapping key and sequence item, by its path."""
    lines: dict[Loc, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            lines[sub] = key.start_mark.line + 1
            lines.update(line_index(value, sub))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            lines.update(line_index(item, (*path, i)))
    return lines


def _describe(error: dict, lines: dict[Loc, int], source: str, data: dict) -> str:
    loc: Loc = tuple(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    # a model-level check that names its field ("default_class: ...") points at that field
    named = _FIELD_PREFIX.match(message)
    if named and (*loc, named.group(1)) in lines:
        loc = (*loc, named.group(1))
        message = message.removeprefix(f"{named.group(1)}: ")
    if error["type"] not in ("value_error", "missing") and "input" in error:
        message += f" (got {error['input']!r})"
    line = _line_of(loc, lines)
    where = f"{source}:{line}" if line else source
    return f"{where}: {_dotted(loc, data) or '(top level)'}: {message}"


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _dotted(loc: Loc, data: dict) -> str:
    """classes[1](interactive).deadline.ms"""
    out = ""
    node: object = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f"({node['name']})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out
