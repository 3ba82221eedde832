"""Reading the solver's inputs from small YAML / JSON files (for `dilaserve plan`).

cluster:   {nodes: [{count: 4, gpus_per_node: 8, gpu_type: H100, name: optional}]}
           or a compact spec string, in a file or on the command line: "4x8:H100,2x4:A100"
workload:  {classes: [{name, rate, prompt: {mean, p90} | mean, output: ..., deadline_s | slo_scale,
           min_threshold, max_accuracy_drop, target_attainment, priority, best_effort}],
           policy: {tp_degrees, thresholds, block_sizes, max_batch, reload_s, drain_s,
           best_effort_utilization, extrapolate_tp, tp_overhead: {...}}}     (policy optional)
profiles:  a directory of profile JSON files, or the files; each is recognised by its "schema"
           (step-cost profiles: any number; quality profile: exactly one).
Errors are ValueErrors naming the field, e.g. "workload.classes[1] (chat): rate must be >= 0".
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import yaml

from dilaserve.profiles.quality import QUALITY_SCHEMA, QualityProfile
from dilaserve.profiles.step_cost import STEP_COST_SCHEMA, StepCostProfile
from solver.tp_extrapolation import TpOverhead
from solver.types import (
    Cluster,
    LengthDist,
    NodeType,
    Profiles,
    SolverPolicy,
    Workload,
    WorkloadClass,
)


def read_data(path: Path | str, what: str) -> object:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what}: no such file {str(path)!r}")
    text = path.read_text()
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{what}: {path} is not valid {path.suffix[1:] or 'YAML'}: "
                         f"{str(err).splitlines()[0]}") from None


def _check_keys(data: object, allowed: set[str], where: str) -> dict:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(allowed)}")
    return data


def load_cluster(arg: str) -> Cluster:
    """A file (YAML / JSON) or a compact spec like `4x8:H100`."""
    path = Path(arg)
    if not path.is_file():
        if "x" in arg.lower() and ":" in arg:
            return Cluster.from_spec(arg)
        raise ValueError(f"cluster: {arg!r} is neither a file nor a spec like 4x8:H100")
    data = read_data(path, "cluster")
    if isinstance(data, str):
        return Cluster.from_spec(data)
    data = _check_keys(data, {"nodes"}, "cluster")
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        raise ValueError("cluster.nodes: expected a list of node types")
    out = []
    for i, raw in enumerate(nodes):
        where = f"cluster.nodes[{i}]"
        raw = dict(_check_keys(raw, {"count", "gpus_per_node", "gpus", "gpu_type", "name"},
                               where))
        if "gpus" in raw:
            raw["gpus_per_node"] = raw.pop("gpus")
        try:
            out.append(NodeType(**raw))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None
    try:
        return Cluster(tuple(out))
    except ValueError as err:
        raise ValueError(str(err)) from None


def _length(raw: object, where: str) -> LengthDist:
    try:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return LengthDist(float(raw))
        raw = _check_keys(raw, {"mean", "p90"}, where)
        return LengthDist(**raw)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


_CLASS_FIELDS = {f.name for f in fields(WorkloadClass)}
_POLICY_FIELDS = {"tp_degrees", "thresholds", "block_sizes", "max_batch", "reload_s", "drain_s",
                  "best_effort_utilization", "extrapolate_tp", "tp_overhead"}


def load_workload(path: Path | str) -> tuple[Workload, dict]:
    """The workload and the file's `policy` section (a dict, possibly empty)."""
    data = _check_keys(read_data(path, "workload"), {"classes", "policy"}, "workload")
    classes = data.get("classes")
    if not isinstance(classes, list) or not classes:
        raise ValueError("workload.classes: expected a non-empty list of SLO classes")
    out = []
    for i, raw in enumerate(classes):
        where = f"workload.classes[{i}]"
        raw = dict(_check_keys(raw, _CLASS_FIELDS, where))
        if "name" in raw:
            where += f" ({raw['name']})"
        for key in ("prompt", "output"):
            if key not in raw:
                raise ValueError(f"{where}.{key}: missing (token lengths: mean and p90)")
            raw[key] = _length(raw[key], f"{where}.{key}")
        try:
            out.append(WorkloadClass(**raw))
        except TypeError as err:
            raise ValueError(f"{where}: {err}") from None
        except ValueError as err:
            raise ValueError(f"{where}: {str(err).split(': ', 1)[-1]}") from None
    policy = _check_keys(data.get("policy") or {}, _POLICY_FIELDS, "workload.policy")
    return Workload(tuple(out)), policy


def make_policy(section: dict, base: SolverPolicy | None = None,
                **overrides) -> tuple[SolverPolicy, TpOverhead | None]:
    """The workload file's `policy` section over `base` (default: the solver's defaults)."""
    section = dict(section)
    overhead = section.pop("tp_overhead", None)
    for key in ("tp_degrees", "thresholds", "block_sizes"):
        if key in section and section[key] is not None:
            if not isinstance(section[key], list):
                raise ValueError(f"workload.policy.{key}: expected a list")
            section[key] = tuple(section[key])
    try:
        policy = (replace(base, **section, **overrides) if base
                  else SolverPolicy(**section, **overrides))
        tp = TpOverhead(**_check_keys(overhead, {f.name for f in fields(TpOverhead)},
                                      "workload.policy.tp_overhead")) if overhead else None
    except TypeError as err:
        raise ValueError(f"workload.policy: {err}") from None
    return policy, tp


def load_profiles(paths: list[str], tp_overhead: TpOverhead | None = None) -> Profiles:
    files: list[Path] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            files += sorted(p.glob("*.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"profiles: no such file or directory {arg!r}")
    steps, quality = [], []
    for f in files:
        data = read_data(f, "profiles")
        schema = data.get("schema") if isinstance(data, dict) else None
        try:
            if schema == STEP_COST_SCHEMA:
                steps.append(StepCostProfile.from_json(data))
            elif schema == QUALITY_SCHEMA:
                quality.append(QualityProfile.from_json(data))
        except (KeyError, TypeError) as err:
            raise ValueError(f"profiles: {f}: malformed {schema} profile ({err})") from None
    if not steps:
        raise ValueError(f"profiles: no step-cost profile ({STEP_COST_SCHEMA}) among {paths}")
    if len(quality) != 1:
        raise ValueError(f"profiles: need exactly one quality profile ({QUALITY_SCHEMA}), "
                         f"found {len(quality)} among {paths}")
    extra = {"tp_overhead": tp_overhead} if tp_overhead is not None else {}
    return Profiles(tuple(steps), quality[0], **extra)
