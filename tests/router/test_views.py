"""The router's load model: what it knows of a replica -> the ReplicaView the pure router reads."""

from __future__ import annotations

import math

import pytest

from orchestrator.router import predicted_latency
from orchestrator.service import ReplicaEndpoint, replica_view
from orchestrator.service.views import UNPOLLED_MAX_ROWS, TypicalRequest
from orchestrator.step_model import step_time_model
from orchestrator.types import ReplicaConfig, ReplicaState, RouteRequest
from proto import dilaserve_pb2 as pb

CONFIG = ReplicaConfig("cpu", 1, 8, 0.5, 0.9)
COEF = (1e-3, 1e-5, 2e-5, 1e-8)
TYPICAL = TypicalRequest(prompt_len=40.0, canvas_len=24.0)


def stats(**fields) -> pb.StatsReply:
    base = dict(max_rows=4, block_size=8, tokens_per_step=2.0, step_cost_coef=COEF)
    return pb.StatsReply(**{**base, **fields})


def endpoint(state=ReplicaState.ACTIVE) -> ReplicaEndpoint:
    return ReplicaEndpoint(3, "127.0.0.1:1", CONFIG, 2, state)


def test_step_time_model_mixes_refresh_and_reuse_rows_by_the_rate():
    a, b, c, d = COEF
    seq = 100.0
    # one step per block: every step refreshes the whole row
    assert step_time_model(COEF, 8, 8.0, seq, "dual") == pytest.approx(
        (2 * a, b * seq + d * seq * (seq + 1)))
    # one token per step: one refresh in eight steps, the rest reuse the 8-token block
    refresh, reuse = b * seq + d * seq * (seq + 1), c * 8 + d * 8 * (seq + 1)
    assert step_time_model(COEF, 8, 1.0, seq, "dual")[1] == pytest.approx(
        refresh / 8 + reuse * 7 / 8)
    # no cache: a reuse step queries the whole row too
    assert step_time_model(COEF, 8, 1.0, seq, "none")[1] > step_time_model(
        COEF, 8, 1.0, seq, "dual")[1]


def test_a_polled_replica_view_uses_its_stats_and_the_routers_own_counts():
    reply = stats(queued=1, running=3, backlog_steps=40.0)
    view = replica_view(endpoint(), reply, 6, True, TYPICAL, "dual")
    assert (view.replica_id, view.config, view.node, view.state) == (
        3, CONFIG, 2, ReplicaState.ACTIVE)
    assert (view.active, view.resident, view.max_rows) == (6, 4, 4)
    assert view.backlog_steps == pytest.approx(6 * 40.0 / 4)  # the worker's steps per request
    assert view.tokens_per_step == 2.0
    assert (view.step_base_s, view.row_step_s) == pytest.approx(
        step_time_model(COEF, 8, 2.0, TYPICAL.seq_len, "dual"))


def test_an_idle_replica_expects_a_typical_requests_steps():
    view = replica_view(endpoint(), stats(), 2, True, TYPICAL, "dual")
    # 24 tokens = 3 blocks of 8, 8 / 2 = 4 steps each
    assert view.backlog_steps == pytest.approx(2 * 12.0)


def test_a_reported_rate_is_kept_within_one_token_and_a_block_per_step():
    assert replica_view(endpoint(), stats(tokens_per_step=50.0), 0, True, TYPICAL,
                        "dual").tokens_per_step == 8.0
    assert replica_view(endpoint(), stats(tokens_per_step=math.nan), 0, True, TYPICAL,
                        "dual").tokens_per_step == 1.0


@pytest.mark.parametrize(
    ("state", "healthy", "draining", "accepting"),
    [
        (ReplicaState.ACTIVE, True, False, True),
        (ReplicaState.ACTIVE, False, False, False),  # its last poll or call failed
        (ReplicaState.ACTIVE, True, True, False),  # drained through Control
        (ReplicaState.LOADING, True, False, False),
        (ReplicaState.DRAINING, True, False, False),
    ],
)
def test_only_healthy_active_replicas_accept(state, healthy, draining, accepting):
    view = replica_view(endpoint(state), stats(draining=draining), 0, healthy, TYPICAL, "dual")
    assert view.accepting is accepting
    if state is ReplicaState.LOADING:
        assert view.state is ReplicaState.LOADING


def test_before_its_first_poll_a_replica_is_predicted_quick_and_unbounded():
    view = replica_view(endpoint(), None, 1, True, TYPICAL, "dual")
    assert view.max_rows == UNPOLLED_MAX_ROWS and view.accepting
    request = RouteRequest("r", "standard", 10, 64, 0.0, 1.0)
    assert predicted_latency(request, view) == 0.0


def test_typical_request_is_a_running_mean_starting_at_the_first():
    typical = TypicalRequest().with_request(10, 32)
    assert (typical.prompt_len, typical.canvas_len) == (10.0, 32.0)
    typical = typical.with_request(110, 32)
    assert typical.prompt_len == pytest.approx(10 + 100 * 0.02) and typical.seq_len > 42
