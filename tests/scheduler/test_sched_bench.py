from __future__ import annotations

from worker.scheduler import bench


def test_bench_runs_and_reports_microseconds(capsys) -> None:
    assert bench.main(["--steps", "60", "--depths", "16", "64", "--online"]) == 0
    out = capsys.readouterr().out
    assert "depth   16: median" in out and "depth   64: median" in out
    result = bench.run_depth(16, 60, online=False)
    assert result["steps"] > 0 and result["median_us"] > 0 and result["mean_depth"] > 8
