"""Every `dilaserve ...` command line in README.md and docs/*.md works as written.

A synopsis (with [optional] parts, placeholders such as DIR or HOST:PORT, or `...`) must name an
existing subcommand and existing flags. A complete command must parse with the real CLI, and it
either runs here (each in under 30 s on the 2-core box; the slow test runs them in order) or is
listed in EXEMPT with why it does not (a cluster it needs, minutes of work, a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from dilaserve.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDERS = {"DIR", "FILE", "F", "N", "D", "R", "K", "S:E", "POLICY", "ROUTER", "W.yaml",
                "TRACE", "HOST:PORT", "PATH", "HEAD:50051", "CLUSTER.yaml"}

# run in this order (later ones use what earlier ones made); /tmp/tiny-llada is a temp dir here
RUN = [
    "dilaserve tiny-checkpoint /tmp/tiny-llada",
    "dilaserve profile --model /tmp/tiny-llada --quick",
    "dilaserve policy validate deploy/policies/default.yaml --model /tmp/tiny-llada",
    'dilaserve generate --model /tmp/tiny-llada --chat "Hello, who are you?"',
    'dilaserve generate "sort:3141>"',
    "dilaserve policy validate deploy/policies/ray-cluster.yaml",
    "dilaserve bench-kernels",
    "dilaserve bench-kernels --dtype bfloat16",
    "dilaserve plan --cluster 4x8:H100 --workload deploy/workloads/llada-8b-chat.yaml",
    "dilaserve plan --cluster 1x4:cpu --profiles shipped --workload deploy/workloads/embedded.yaml"
    " --json",
]
EXEMPT = {
    "dilaserve serve": "runs until stopped (tests/runtime/test_demo_e2e.py runs it)",
    "dilaserve demo": "a cluster and a workload for ~30 s (tests/runtime/test_demo_e2e.py)",
    "dilaserve status": "needs a running cluster (tests/runtime/test_cluster_ray.py)",
    "dilaserve generate --target": "needs a running router or worker",
    'dilaserve generate "sort:3141>" --target': "needs a running router or worker",
    'dilaserve generate "sort:3141>" --deadline 2s --target': "needs a running router",
    "dilaserve worker": "serves until stopped (tests/service/test_cli.py runs it)",
    "dilaserve bench --mode compare": "minutes of live runs (tests/livebench runs a short one)",
    "dilaserve bench --mode live": "minutes of live runs (tests/livebench runs a short one)",
    "dilaserve bench --trace ../shared": "minutes of simulation on the Azure trace",
    "dilaserve bench --mode sim": "prose naming the mode (a run needs --trace, or --sweep: about "
        "an hour of simulation on both Azure traces; tests/sim/test_bench_sweep.py runs the "
        "sweep on tiny traces)",
    "dilaserve bench --capacity-check": "prose naming the flag (a run needs --trace)",
    "dilaserve bench --mode sim --sweep accuracy-budget":
        "about an hour of simulation on both Azure traces (tests/sim/test_bench_sweep.py runs "
        "it on tiny traces)",
    "dilaserve bench-chaos": "minutes of faults against a cluster (docs/reliability.md)",
    "dilaserve bench-loading": "builds and loads a 309M-parameter checkpoint (~1 min)",
    "dilaserve bench-router": "a minute of load through a router",
    "dilaserve bench-tp": "spawns tensor-parallel ranks for a minute",
    "dilaserve plan --bench": "solves up to 1,024 GPUs (~1 min)",
    "dilaserve policy validate deploy/policies/llada-8b-a100.yaml --model deploy/models":
        "needs the downloaded LLaDA-8B-Instruct (tests/policy/test_deploy_llada.py uses its "
        "config)",
    "dilaserve profile --model ~/dilaserve-models": "a GPU node with LLaDA-8B-Instruct",
    "dilaserve policy validate --check-model --model ~/dilaserve-models":
        "runs on each node of a `ray up` cluster, where the model was copied",
    "dilaserve profile --device cuda": "needs a GPU",
    "dilaserve profile --tp 2": "spawns ranks and measures for minutes",
    "dilaserve profile --what quality": "minutes of held-out decoding",
    "dilaserve profile": "minutes of measurement (--quick runs above)",
    "dilaserve secrets": "writes a cluster's keys and tokens where it says (the slow test below "
                         "makes them in a temp home; tests/policy/test_security_policy.py runs "
                         "the command)",
}


def documented() -> list[tuple[str, str, bool]]:
    """(file, command, inline) for every `dilaserve` line of a code block and inline span."""
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                if line.strip().startswith("dilaserve "):
                    out.append((path.name, line.strip(), False))
        prose = re.sub(r"```.*?```", "", text, flags=re.S)
        out += [(path.name, " ".join(span.split()), True)
                for span in re.findall(r"`(dilaserve [^`]+)`", prose)]
    return [(name, _clean(command), inline) for name, command, inline in out]


def _clean(command: str) -> str:
    command = re.sub(r"\s+#.*$", "", command).strip()
    return command.removesuffix("&").strip()


def _synopsis(command: str) -> bool:
    tokens = command.replace("\\|", "|").split()
    return any(c in command for c in ("[", "...", "|")) or any(t in PLACEHOLDERS for t in tokens)


def _subparser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions or not argv or argv[0] not in actions[0].choices:
        return parser
    return _subparser(actions[0].choices[argv[0]], argv[1:])


def _parse_error(command: str) -> str | None:
    """argparse's complaint about the command, or None when it parses."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit:
        return errors.getvalue().strip().splitlines()[-1]
    return None


def _reference(command: str, inline: bool) -> bool:
    """Prose naming a command (`dilaserve plan`, `dilaserve bench --mode sim`), not a line to
    run: inline, and the bare subcommand or only short of the arguments it requires."""
    if not inline:
        return False
    error = _parse_error(command)
    return len(command.split()) == 2 or (error is not None and "arguments are required" in error)


DOCUMENTED = sorted(set(documented()))
COMMANDS = sorted({(where, command) for where, command, _ in DOCUMENTED})
COMPLETE = sorted({(where, command) for where, command, inline in DOCUMENTED
                   if not _synopsis(command) and not _reference(command, inline)})


@pytest.mark.parametrize("where, command", COMMANDS)
def test_the_command_names_a_subcommand_and_flags_that_exist(where, command):
    words = command.replace("\\|", "|").split()[1:]
    parser = _subparser(build_parser(), words)
    assert parser.prog != "dilaserve", f"{where}: no such subcommand in {command!r}"
    flags = {f for a in parser._actions for f in a.option_strings}
    used = {w.strip("[]").split("=")[0] for w in words if w.strip("[]").startswith("--")}
    assert used <= flags, f"{where}: {command!r} uses {sorted(used - flags)}"


@pytest.mark.parametrize("where, command", COMPLETE)
def test_a_complete_command_parses_and_is_run_or_exempt(where, command):
    error = _parse_error(command)
    assert error is None, f"{where}: {command!r} does not parse: {error}"
    assert command in RUN or any(command.startswith(p) for p in EXEMPT), \
        f"{where}: {command!r} is neither run by this test nor exempt with a reason"


@pytest.mark.slow
def test_the_commands_that_take_seconds_run_as_written(tmp_path):
    from dilaserve.cli.secrets import write_secrets

    home = tmp_path / "home"  # the cluster policies name ~/dilaserve-secrets: a home with them
    write_secrets(home / "dilaserve-secrets")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HOME": str(home)}
    for command in RUN:
        argv = shlex.split(command.replace("/tmp/tiny-llada", str(tmp_path / "tiny-llada")))
        done = subprocess.run([sys.executable, "-m", "dilaserve.cli.main", *argv[1:]], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, f"{command}: {(done.stdout + done.stderr)[-2000:]}"
