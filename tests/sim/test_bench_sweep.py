"""`dilaserve bench --sweep accuracy-budget` on tiny stand-in traces: every run is written as it
ends, a rerun reads them back, and the report checks the goals and draws the plot."""

from __future__ import annotations

import json

import dilaserve.cli.bench_sweep as sweep
from dilaserve.cli.main import main
from tests.sim.test_bench_cli import write_trace


def test_the_sweep_runs_resumes_and_reports(tmp_path, capsys, monkeypatch):
    traces, out = tmp_path / "traces", tmp_path / "out"
    traces.mkdir()
    out.mkdir()
    for i, (name, file) in enumerate(sweep.TRACES):
        write_trace(traces / file, n=40, rate=1.0, seed=i)
        (out / f"rate-{name}.json").write_text(json.dumps({"rate_scale": 2.0}))  # no search
    monkeypatch.setattr(sweep, "WINDOW", "0:30")
    monkeypatch.setattr(sweep, "BUDGETS", (0.01,))
    argv = ["bench", "--mode", "sim", "--sweep", "accuracy-budget", "--traces-dir",
            str(traces), "--out", str(out), "--gpus", "2", "--no-progress"]
    assert main(argv) == 0
    first = capsys.readouterr()
    assert "goals (issue 20):" in first.out and "budgets kept" in first.out
    assert (out / "attainment-vs-drop.png").stat().st_size > 0
    checks = json.loads((out / "checks.json").read_text())
    assert set(checks) >= {"light load: no policy with admission below static"}
    runs = sorted(p.name for p in out.glob("conv-hour-40pct_*.json"))
    assert "conv-hour-40pct_dilaserve_b1.json" in runs
    assert "conv-hour-40pct_best-static_b1_TP1-0.85.json" in runs  # 0.85: interpolated top
    assert main(argv) == 0  # everything read back: nothing simulated again
    again = capsys.readouterr()
    assert again.out == first.out.replace(first.out.splitlines()[-1], again.out.splitlines()[-1])
    assert again.err == ""


def test_the_sweep_refuses_what_it_sets_itself(capsys):
    assert main(["bench", "--mode", "sim", "--sweep", "nope"]) == 2
    assert "--sweep: unknown 'nope'" in capsys.readouterr().err
    assert main(["bench", "--mode", "sim", "--sweep", "accuracy-budget", "--window", "0:60"]) == 2
    assert "sets its own windows" in capsys.readouterr().err
    assert main(["bench", "--mode", "sim"]) == 2
    assert "--trace: required" in capsys.readouterr().err
