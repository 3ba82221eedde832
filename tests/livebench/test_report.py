"""The live bench's accounting and reports, on outcomes made by hand, and its CLI errors."""

from __future__ import annotations

import math
from dataclasses import replace

import grpc
import pytest

from dilaserve.cli.main import main
from dilaserve.livebench.calibrate import HostCalibration
from dilaserve.livebench.client import LiveOutcome, _status
from dilaserve.livebench.compare import Pair, compare_rows, compare_table, plot_compare, verdict
from dilaserve.livebench.run import summarize_live
from tests.livebench.test_mapping import workload


def test_grpc_endings_map_to_the_simulators_outcomes():
    assert _status(grpc.StatusCode.DEADLINE_EXCEEDED, "") == "expired"
    assert _status(grpc.StatusCode.RESOURCE_EXHAUSTED, "shed: predicted 0.1 s") == "shed"
    assert _status(grpc.StatusCode.RESOURCE_EXHAUSTED, "every replica ... refused") == "rejected"
    assert _status(grpc.StatusCode.INTERNAL, "boom") == "error"


def outcomes_for(w):
    """met, late, expired, rejected, shed, error in turn; the second met one answers wrong."""
    statuses = ("met", "late", "expired", "rejected", "shed", "error")
    out = []
    for r in w.requests:
        status = statuses[r.index % len(statuses)]
        done = status in ("met", "late")
        wrong = status == "met" and r.index % 12 == 6
        out.append(LiveOutcome(r.index, status, 0.001, 0.010 if done else math.nan,
                               ("x" if wrong else r.answer) if done else "", 0.9 if done
                               else math.nan, 1 if done else 0))
    return out


def test_live_outcomes_summarize_like_the_simulators_with_a_paired_accuracy_drop():
    w = workload()
    outcomes = outcomes_for(w)
    reference = {(r.prompt, r.canvas): True for r in w.requests}
    s = summarize_live("static", "TP1 x tau 0.9", w, outcomes, reference, 5.0, {}, 1.0, 1.0,
                       replica_steps=123)
    n = len(w.requests)
    assert s.requests == n and s.met + s.late + s.expired + s.rejected + s.shed + \
        sum(o.status == "error" for o in outcomes) == n
    assert s.attainment == pytest.approx(s.met / n)
    assert s.latency_p50_s == pytest.approx(0.010)  # the client's, not the send lag
    finished = [o for o in outcomes if o.finished]
    wrong = sum(o.text != w.requests[o.index].answer for o in finished)
    assert wrong > 0
    assert s.reference_accuracy == 1.0
    assert s.accuracy_drop_points == pytest.approx(100 * wrong / len(finished))
    assert s.replica_steps == 123 and any("load average" in note for note in s.notes)


def test_warmup_replays_the_first_seconds_under_new_request_ids():
    w = workload()
    warm = w.first(2.0, "warmup")
    assert warm and all(r.at_s < 2.0 for r in warm)
    assert all(r.request_id.startswith("warmup-") for r in warm)
    assert {r.request_id for r in warm}.isdisjoint(r.request_id for r in w.requests)
    assert [r.index for r in warm] == list(range(len(warm)))


HOST = HostCalibration(0.002, 1.1, 0.0008, 100, 3.0, 50.0)


def pairs():
    w = workload()
    reference = {(r.prompt, r.canvas): True for r in w.requests}
    live = summarize_live("static", "-", w, outcomes_for(w), reference, 5.0, {}, 1.0, 1.0)
    out = []
    for seed, shift in ((0, 0.0), (1, 0.1)):
        sim = replace(live, attainment=live.attainment + 0.05 + shift,
                      latency_p50_s=live.latency_p50_s * 1.1)
        out.append(Pair("static", 1.0, 5.0, seed, replace(live, attainment=live.attainment
                                                         + shift), sim, HOST))
    return out


def test_compare_rows_put_the_difference_beside_the_live_spread(tmp_path):
    rows = compare_rows(pairs())
    (row,) = rows
    assert row["attainment_diff_pts"] == pytest.approx(5.0)
    assert row["live_spread_pts"] == pytest.approx(10.0)
    assert row["p50_diff_rel"] == pytest.approx(0.1)
    assert "static" in compare_table(rows) and "1/1 rows within 5" in verdict(rows)
    png = plot_compare(rows, tmp_path / "c.png", type("S", (), {
        "cluster": type("C", (), {"gpus": 2})(), "profiles": type("P", (), {"name": "t"})()})())
    assert 1000 < png.stat().st_size < 200_000


@pytest.mark.parametrize("argv, message", [
    (["--mode", "live", "--target", "nohost"], "--target"),
    (["--mode", "live", "--target", "host:99999"], "--target"),
    (["--mode", "sim", "--target", "127.0.0.1:1"], "--target"),
    (["--mode", "live", "--warmup", "-1"], "--warmup"),
    (["--mode", "live", "--find-capacity", "0"], "--find-capacity"),
    (["--mode", "compare", "--seeds", "1,1"], "--seeds"),
    (["--mode", "compare", "--seeds", "a"], "--seeds"),
    (["--mode", "live", "--port", "70000"], "--port"),
])
def test_bad_live_flags_fail_cleanly_before_anything_starts(argv, message, capsys):
    assert main(["bench", "--trace", "poisson", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dilaserve bench: error: ") and message in err
    assert "Traceback" not in err


def test_capacity_interpolates_between_the_live_rates_around_the_target():
    from dilaserve.livebench.command import capacity_from

    tried = [(2.0, 40.0, 0.95), (3.0, 60.0, 0.85), (1.0, 20.0, 1.0)]
    assert capacity_from(tried, 0.9) == pytest.approx(2.5)
    assert capacity_from([(1.0, 20.0, 0.5), (0.6, 12.0, 0.7)], 0.9) == 0.6
    assert capacity_from([(1.0, 20.0, 0.95)], 0.9) == 1.0
