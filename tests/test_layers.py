"""The layers, read from the code: imports point one way (README, "Layers").

0 shared types -> 1 pure decision logic -> 2 runtimes -> 3 commands. A subpackage may import its
own layer or a lower one, never a higher one; subpackages import each other without cycles; the
orchestrator never imports the simulator (the simulator supplies its plan scorer where it
composes a run). Every import counts, including those inside functions.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = ("dilaserve", "worker", "orchestrator", "solver", "sim", "kernels", "traces", "proto")

SHARED, DECISIONS, RUNTIMES, COMMANDS = 0, 1, 2, 3
LAYERS = {
    # 0: shared types; no torch, Ray or PuLP (gRPC only in the generated wire code)
    "dilaserve": SHARED,  # the package itself holds no code
    "dilaserve.core": SHARED,
    "dilaserve.profiles": SHARED,
    "dilaserve.policy": SHARED,
    "traces": SHARED,
    "proto": SHARED,
    # 1: pure decision logic, driven with an injected clock
    "worker.scheduler": DECISIONS,
    "orchestrator": DECISIONS,
    "solver": DECISIONS,
    # 2: runtimes
    "worker": RUNTIMES,  # the package itself holds no code
    "kernels": RUNTIMES,
    "worker.models": RUNTIMES,
    "worker.engine": RUNTIMES,
    "worker.measure": RUNTIMES,
    "worker.service": RUNTIMES,
    "worker.client": RUNTIMES,
    "worker.parallel": RUNTIMES,
    "orchestrator.service": RUNTIMES,
    "orchestrator.runtime": RUNTIMES,
    "sim": RUNTIMES,
    # 3: commands
    "dilaserve.cli": COMMANDS,
    "dilaserve.livebench": COMMANDS,
    "dilaserve.benches": COMMANDS,
}
# third-party packages a layer may not import
FORBIDDEN = {
    SHARED: ("torch", "ray", "pulp", "highspy", "triton", "grpc", "safetensors"),
    DECISIONS: ("torch", "ray", "triton", "grpc", "safetensors"),
}
GENERATED_WIRE_CODE = "proto"  # its *_pb2_grpc.py import grpc by design


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for top in TOP_LEVEL:
        for path in (root / top).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _package(module: str, modules: dict[str, Path]) -> str:
    """The subpackage a module belongs to: its directory, as a dotted name."""
    path = modules[module]
    if path.name == "__init__.py":
        return module
    return module.rsplit(".", 1)[0] if "." in module else module


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that `name` (a dotted import target) starts with."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported name, line) for every import in the file, relative ones resolved."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join(here + ([base] if base else []))
            out.append((base, node.lineno))
            # `from pkg import module` imports the module
            out += [(f"{base}.{a.name}", node.lineno) for a in node.names
                    if f"{base}.{a.name}" in modules]
    return out


def package_graph(root: Path = ROOT):
    """{package: {imported package: [(file, line), ...]}} and the third-party imports per
    package, from every module of the top-level packages."""
    modules = _modules(root)
    edges: dict[str, dict[str, list[tuple[str, int]]]] = defaultdict(lambda: defaultdict(list))
    external: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for module, path in modules.items():
        source = _package(module, modules)
        where = str(path.relative_to(root))
        for name, line in _imports(module, path, modules):
            target = _resolve(name, modules)
            if target is not None:
                package = _package(target, modules)
                if package != source:
                    edges[source][package].append((where, line))
            elif name.split(".")[0] not in TOP_LEVEL:
                external[source].append((name.split(".")[0], where, line))
    packages = {_package(m, modules) for m in modules}
    return packages, edges, external


def layer_violations(root: Path = ROOT) -> list[str]:
    packages, edges, external = package_graph(root)
    problems = [f"{p}: no layer declared in tests/test_layers.py" for p in sorted(packages)
                if p not in LAYERS]
    for source, targets in edges.items():
        for target, sites in targets.items():
            if source in LAYERS and target in LAYERS and LAYERS[target] > LAYERS[source]:
                problems.append(f"{source} (layer {LAYERS[source]}) imports {target} (layer "
                                f"{LAYERS[target]}) at {sites[0][0]}:{sites[0][1]}")
            if source.split(".")[0] == "orchestrator" and target.split(".")[0] == "sim":
                problems.append(f"{source} imports the simulator ({target}) at "
                                f"{sites[0][0]}:{sites[0][1]}")
    for source, found in external.items():
        banned = FORBIDDEN.get(LAYERS.get(source, RUNTIMES), ())
        for name, where, line in found:
            if name in banned and not (name == "grpc" and source == GENERATED_WIRE_CODE):
                problems.append(f"{source} (layer {LAYERS[source]}) imports {name} at "
                                f"{where}:{line}")
    return sorted(problems)


def import_cycles(root: Path = ROOT) -> list[list[str]]:
    """Strongly connected groups of more than one subpackage (Tarjan)."""
    _, edges, _ = package_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def test_imports_point_down_the_layers():
    assert layer_violations() == []


def test_no_import_cycle_between_subpackages():
    cycles = import_cycles()
    _, edges, _ = package_graph()
    detail = [f"{a} -> {b} at {edges[a][b][0]}" for c in cycles for a in c for b in c
              if b in edges.get(a, {})]
    assert cycles == [], detail


def test_the_checks_see_a_violation(tmp_path):
    """The checker itself: a copy of the tree with one upward import and one cycle."""
    for top in TOP_LEVEL:
        (tmp_path / top).mkdir()
        (tmp_path / top / "__init__.py").write_text("")
    for package in ("dilaserve/core", "orchestrator/runtime"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "dilaserve/core/steps.py").write_text("import torch\nfrom sim import run\n")
    (tmp_path / "sim/run.py").write_text("from dilaserve.core import steps\n")
    (tmp_path / "orchestrator/runtime/actor.py").write_text("def f():\n    import sim.run\n")
    problems = layer_violations(tmp_path)
    assert any("dilaserve.core (layer 0) imports sim (layer 2)" in p for p in problems)
    assert any("dilaserve.core (layer 0) imports torch" in p for p in problems)
    assert any("orchestrator.runtime imports the simulator" in p for p in problems)
    assert import_cycles(tmp_path) == [["dilaserve.core", "sim"]]


LIGHT_IMPORTS = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
heavy = ("torch", "ray", "pulp", "highspy", "triton", "safetensors", "matplotlib")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


def _heavy_modules_loaded_by(*modules: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", LIGHT_IMPORTS, *modules], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_router_imports_no_torch_ray_or_pulp():
    assert _heavy_modules_loaded_by(
        "orchestrator.router", "orchestrator.service.router_server",
        "orchestrator.service.standalone", "orchestrator.service.proxy",
        "worker.models.tokenizer") == []


@pytest.mark.slow
def test_decision_logic_and_the_simulator_import_no_torch_or_ray():
    loaded = _heavy_modules_loaded_by(
        "worker.scheduler.scheduler", "orchestrator.controller", "orchestrator.planning",
        "solver.solve", "sim.simulator", "sim.experiments", "dilaserve.policy.watcher")
    assert "torch" not in loaded and "ray" not in loaded, loaded
