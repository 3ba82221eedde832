"""A request as the router takes it: the worker's checks and deadline rule, the RouteRequest."""

from __future__ import annotations

import math

import pytest

from orchestrator.service.request import prepare
from tests.service.helpers import TOKENIZER, policy_for_tests
from worker.client import generate_request
from worker.service.validation import InvalidRequest

POLICY = policy_for_tests()  # standard: 20 s deadline; batch: best-effort; block 8; <= 64 tokens


def test_the_deadline_is_the_earliest_of_the_class_request_and_grpc_deadlines():
    routed = prepare(generate_request("abc", 20), POLICY, TOKENIZER, None, 100.0, None)
    assert routed.slo.name == "standard" and routed.deadline_s == pytest.approx(120.0)
    own = prepare(generate_request("abc", 20, deadline_ms=500),
                  POLICY, TOKENIZER, None, 100.0, None)
    assert own.deadline_s == pytest.approx(100.5) and own.relative_deadline_ms == 500
    grpc = prepare(generate_request("abc", 20, deadline_ms=500),
                   POLICY, TOKENIZER, None, 100.0, 0.2)
    assert grpc.deadline_s == pytest.approx(100.2)
    none = prepare(generate_request("abc", 20, slo_class="batch"),
                   POLICY, TOKENIZER, None, 1.0, None)
    assert math.isinf(none.deadline_s) and none.relative_deadline_ms == 0.0
    # the worker's rule: the earliest of the three, so a longer deadline_ms keeps the class's
    longer = prepare(generate_request("abc", 20, deadline_ms=60_000),
                     POLICY, TOKENIZER, None, 100.0, None)
    assert longer.deadline_s == pytest.approx(120.0) and longer.relative_deadline_ms == 20_000
    own_batch = prepare(generate_request("abc", 20, deadline_ms=60_000, slo_class="batch"),
                        POLICY, TOKENIZER, None, 100.0, 30.0)
    assert own_batch.deadline_s == pytest.approx(130.0)  # no class deadline; gRPC's earlier


def test_a_request_that_waited_before_the_handler_counts_from_the_transport():
    """The handler ran at 100.05 after a 50 ms wait in line: the class's and deadline_ms's
    deadlines count from 100.0, the gRPC deadline (read at the handler) stays where it was."""
    own = prepare(generate_request("abc", 20, deadline_ms=500),
                  POLICY, TOKENIZER, None, 100.0, None, waited_s=0.05)
    assert own.deadline_s == pytest.approx(100.5) and own.waited_s == 0.05
    grpc = prepare(generate_request("abc", 20, deadline_ms=500),
                   POLICY, TOKENIZER, None, 100.0, 0.2, waited_s=0.05)
    assert grpc.deadline_s == pytest.approx(100.05 + 0.2)
    assert grpc.relative_deadline_ms == pytest.approx(250.0)


def test_route_request_and_arrival_have_the_lengths_the_worker_will_use():
    routed = prepare(generate_request("abc+12", 20, request_id="x"),
                     POLICY, TOKENIZER, None, 5.0, None)
    route = routed.route
    assert (route.request_id, route.slo_class, route.prompt_len, route.canvas_len) == (
        "x", "standard", 6, 24)  # 20 rounded up to the block size 8
    assert (route.arrival_s, route.deadline_s) == (5.0, routed.deadline_s)
    bigger = prepare(generate_request([5, 6], 20, block_size=16),
                     POLICY, TOKENIZER, None, 0.0, None)
    assert (bigger.route.prompt_len, bigger.route.canvas_len) == (2, 32)
    arrival = routed.arrival()
    assert (arrival.at_s, arrival.slo_class, arrival.prompt_len, arrival.canvas_len) == (
        5.0, "standard", 6, 24)
    # without a tokenizer the router estimates a text prompt's length by its characters
    assert prepare(generate_request("abcd", 8), POLICY, None, None, 0.0, None).route.prompt_len == 4


def test_the_forwarded_request_has_an_id_its_class_and_the_time_left():
    routed = prepare(generate_request("abc", 8, deadline_ms=1000),
                     POLICY, TOKENIZER, None, 10.0, None)
    assert len(routed.request_id) == 16 and routed.request.slo_class == "standard"
    assert routed.relative_deadline_ms == pytest.approx(1000.0)
    assert routed.upstream(10.25).deadline_ms == pytest.approx(750.0)
    assert routed.upstream(12.0).deadline_ms == pytest.approx(1e-3)  # passed: the worker decides
    batch = prepare(generate_request("abc", 8, slo_class="batch"),
                    POLICY, TOKENIZER, None, 0.0, None)
    assert not batch.upstream(5.0).HasField("deadline_ms")


@pytest.mark.parametrize(
    ("prompt", "fields", "field"),
    [
        ("abc", {"slo_class": "gold"}, "slo_class"),
        ("abc", {"deadline_ms": 0.0}, "deadline_ms"),
        ("abc", {"max_new_tokens": 65}, "max_new_tokens"),
        ("abc", {"block_size": -1}, "quality.block_size"),
        ("ABC", {}, "prompt_text"),  # outside the tokenizer's characters
        ("", {}, "prompt_text"),
        ("abc", {"request_id": "x" * 200}, "request_id"),
    ],
)
def test_invalid_requests_name_the_field(prompt, fields, field):
    max_new = fields.pop("max_new_tokens", 8)
    with pytest.raises(InvalidRequest) as err:
        prepare(generate_request(prompt, max_new, **fields), POLICY, TOKENIZER, None, 0.0, None)
    assert err.value.field == field


def test_both_prompts_is_an_error():
    request = generate_request("abc", 8)
    request.prompt_ids.extend([5, 6])
    with pytest.raises(InvalidRequest) as err:
        prepare(request, POLICY, TOKENIZER, None, 0.0, None)
    assert err.value.field == "prompt_text" and "not both" in str(err.value)


def test_the_route_carries_the_priority_the_worker_will_queue_it_at():
    """The class's, or the request's own when lower: never above the class's."""
    def priority(**fields) -> int:
        return prepare(generate_request("abc", 8, **fields), POLICY, TOKENIZER, None, 1.0,
                       None).route.priority

    assert priority(slo_class="strict") == 1 and priority() == 0
    assert priority(slo_class="strict", priority=7) == 1
    assert priority(slo_class="strict", priority=-3) == -3
