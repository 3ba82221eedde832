from __future__ import annotations

import json

import numpy as np

from dilaserve.cli.main import main


def write_trace(path, n: int = 120, rate: float = 2.0, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1 / rate, n))
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for s, p, o in zip(t, rng.integers(50, 800, n), rng.integers(10, 300, n)):
        whole = int(s)
        frac = f"{s - whole:.7f}"[2:]
        rows.append(f"2023-11-16 18:{15 + whole // 60:02d}:{whole % 60:02d}.{frac},{p},{o}")
    path.write_text("\n".join(rows) + "\n")


def test_bench_end_to_end_through_the_cli(tmp_path, capsys):
    trace = tmp_path / "mini.csv"
    write_trace(trace)
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    code = main(["bench", "--trace", str(trace), "--mode", "sim", "--rate-scale", "1,3",
                 "--slo-scale", "4", "--gpus", "4", "--policies",
                 "static,static+edf,static+edf+threshold,best-static,dilaserve",
                 "--json", str(out_json), "--plot", str(out_png), "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    for name in ("static+edf+threshold", "best-static", "dilaserve", "upper bound",
                 "highest rate at >= 90% attainment", "steps/s"):
        assert name in text
    data = json.loads(out_json.read_text())
    assert len(data["points"]) == 2
    first = data["points"][0]["results"]
    assert {r["policy"] for r in first} == {"static", "static+edf", "static+edf+threshold",
                                            "best-static", "dilaserve"}
    for r in first:
        assert r["met"] + r["late"] + r["expired"] + r["rejected"] + r["shed"] == r["requests"]
    assert out_png.stat().st_size > 1000


def test_bench_synthetic_gamma_and_errors(tmp_path, capsys):
    code = main(["bench", "--trace", "gamma", "--burstiness", "0.5", "--request-rate", "2",
                 "--duration", "20", "--prompt-len", "300", "--output-len", "64",
                 "--policies", "static", "--gpus", "2", "--no-progress"])
    assert code == 0
    assert "gamma" in capsys.readouterr().out
    assert main(["bench", "--trace", "poisson", "--rate-scale", "-1", "--no-progress"]) == 2
    assert "--rate-scale" in capsys.readouterr().err
    assert main(["bench", "--trace", "gamma", "--duration", "5", "--no-progress"]) == 2
    assert "burstiness" in capsys.readouterr().err
    assert main(["bench", "--trace", "poisson", "--mode", "live", "--target", "nohost"]) == 2
    assert "dilaserve bench: error: --target" in capsys.readouterr().err
