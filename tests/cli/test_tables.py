"""What people read: numbers rounded, no negative zero, NaN as "-", tables aligned; the router's
and a worker's Stats as tables."""

from __future__ import annotations

import math

from dilaserve.cli.status import format_stats, format_summary
from dilaserve.cli.tables import num, pct, table
from proto import dilaserve_pb2 as pb


def test_numbers_for_people():
    assert num(-0.0) == "0.0" and num(-0.04) == "0.0" and num(-0.06) == "-0.1"
    assert num(math.nan) == "-" and num(None) == "-" and pct(math.nan) == "-"
    assert num(63.527165465000053) == "63.5" and num(12345) == "12,345"
    assert num(True) == "yes" and pct(0.9731) == "97.3%"


def test_columns_line_up():
    lines = table(("class", "met"), [["interactive", "5"], ["batch", "1,234"]])
    assert [len(line) for line in lines] == [len(lines[0])] * 3
    assert lines[1].endswith("    5") and lines[2].startswith("  batch")


def test_stats_of_a_worker_and_of_the_router_read_as_tables():
    r = pb.StatsReply(model="m", uptime_s=63.527165465000053, max_rows=32, attainment=0.5,
                      step_cost_error=math.nan, min_threshold=0.5, max_threshold=0.9)
    r.classes.add(name="standard", ended=4, met=2, attainment=0.5, target_attainment=0.9)
    text = format_stats(r)
    assert text.startswith("worker: model m, up 63.5 s") and "nan" not in text
    assert "model error - over 0 steps" in text and "  standard      4    2   50.0%     90%" in text
    r.replicas.add(id=3, target="h:1", state="active", tp=1, load=-0.0, healthy=False,
                   error="UNAVAILABLE: gone")
    text = format_stats(r)
    assert text.startswith("router:") and "#3: UNAVAILABLE: gone" in text and " -0." not in text


def test_the_controllers_summary_reads_as_tables():
    summary = {"policy": "p.yaml", "cluster": "1 node", "plan": "plan: 2 x TP1",
               "replicas": [{"id": 0, "config": "TP1 tau 0.9", "node": 0, "phase": "active",
                             "target": "h:1"}],
               "router": {"replicas": [{"id": 0, "queued": 1, "running": 2, "healthy": True}],
                          "classes": {"standard": {"requests": 3, "ended": 3, "met": 2,
                                                   "attainment": 2 / 3,
                                                   "target_attainment": 0.9}}},
               "log": ["12:00:00 started"], "error": ""}
    text = format_summary(summary)
    assert "{" not in text and "66.7%" in text and "#0  TP1 tau 0.9" in text
    assert "x profile" in text and "scaled" not in text  # no factor polled yet: "-"


def test_the_machine_factor_shows_where_it_is_used():
    summary = {"policy": "p.yaml", "cluster": "1 node", "plan": "", "log": [], "error": "",
               "replicas": [{"id": 0, "config": "TP1", "node": 0, "phase": "active",
                             "target": "h:1"}],
               "router": {"replicas": [{"id": 0, "healthy": True, "machine_scale": 1.93}]},
               "machine_scales": {"cpu-x86-64-1threads": 1.93}}
    text = format_summary(summary)
    assert text.count("x1.93") == 2 and "planner's step-cost profiles scaled" in text
    worker = pb.StatsReply(model="m", machine_scale=1.0, machine_scale_measured=1.04)
    assert "steps x1.04 the step-cost profile measured, the profile scaled by x1.0" in \
        format_stats(worker)
