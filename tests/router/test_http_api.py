"""The router's OpenAI-compatible HTTP API with the official `openai` client: a router in this
process in front of workers in this process (the tiny Hugging Face checkpoint with a scripted
engine that writes a known answer; slow engines for deadlines and disconnects)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import openai
import pytest

from dilaserve.core.tokenizer import ChatMessage
from tests.models.test_hf_tokenizer import SPLIT_TEXT
from tests.router.helpers import FixedOrder, StuckEngine, endpoint, routing, workers
from tests.service.helpers import COST, SlowEngine, make_worker, policy_for_tests, synthetic_quality
from tests.service.test_hf_serving import ScriptedEngine
from tests.waiting import wait_for
from worker.client import WorkerClient, generate_request
from worker.models.shipped import load
from worker.models.tiny_checkpoint import write_tiny_checkpoint
from worker.service.setup import build_worker

pytestmark = pytest.mark.slow

MODEL = "tiny-llada"  # the checkpoint's directory name, as its replica reports it
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Caf\u00e9?"}]


class Answering(ScriptedEngine):
    """The scripted engine with this module's own answer (a class attribute)."""


class Crawling(SlowEngine):
    step_s = 0.15  # a stream lasts long enough to leave it halfway


class Walking(SlowEngine):
    step_s = 0.04  # a block takes a few steps: long enough to act between two


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    directory = write_tiny_checkpoint(tmp_path_factory.mktemp("hf") / MODEL)
    model, tok, _ = load(directory)
    Answering.answer = tuple(tok.encode(SPLIT_TEXT))
    worker = build_worker(model, tok, policy_for_tests(), synthetic_quality(), COST,
                          engine_class=Answering)
    with workers(worker) as servers, \
            routing(servers, tokenizer=tok, http_port=0) as (router, _):
        yield tok, router, _client(router)


def _client(router) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.http_url, api_key="unused", max_retries=0, timeout=30)


def _chat_ids(tok) -> int:
    return len(tok.encode_chat([ChatMessage(m["role"], m["content"]) for m in CHAT]))


def test_chat_and_completion_streamed_and_not_with_the_tokenizers_counts(served):
    tok, router, client = served
    answer_tokens = len(tok.encode(SPLIT_TEXT))
    assert [m.id for m in client.models.list().data] == [MODEL]

    chat = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=24)
    assert chat.choices[0].message.content == SPLIT_TEXT
    assert chat.choices[0].finish_reason == "stop"  # EOS inside the canvas
    assert chat.usage.prompt_tokens == _chat_ids(tok)
    assert chat.usage.completion_tokens == answer_tokens
    assert chat.dilaserve["slo_class"] == "standard" and chat.dilaserve["deadline_met"]

    chunks = list(client.chat.completions.create(
        model=MODEL, messages=CHAT, max_tokens=24, stream=True,
        stream_options={"include_usage": True}))
    *blocks, finish, last = chunks
    assert len(blocks) == 3  # one chunk per committed block of 8: 17 tokens and EOS
    assert blocks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content for c in blocks) == SPLIT_TEXT
    assert finish.choices[0].finish_reason == "stop" and finish.usage is None
    assert last.choices == [] and last.usage.model_dump() == chat.usage.model_dump()
    assert len({c.id for c in chunks}) == 1

    text = client.completions.create(model=MODEL, prompt="Caf\u00e9 \u65e5\u672c", max_tokens=8)
    assert text.choices[0].text == SPLIT_TEXT[:7] + "\ufffd"  # the canvas ends mid-character
    assert text.choices[0].finish_reason == "length"
    assert text.usage.prompt_tokens == len(tok.encode("Caf\u00e9 \u65e5\u672c"))
    assert text.usage.completion_tokens == 8
    streamed = list(client.completions.create(model=MODEL, prompt=[5, 6, 7], max_tokens=24,
                                              stream=True))
    assert "".join(c.choices[0].text for c in streamed) == SPLIT_TEXT
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_both_transports_are_counted_as_one(served):
    """Bookkeeping, attainment and Prometheus metrics count HTTP requests with gRPC ones."""
    tok, router, client = served
    before = router.summary()["classes"]["standard"]
    client.completions.create(model=MODEL, prompt="hi", max_tokens=8)
    with WorkerClient(router.target) as grpc_client:
        grpc_client.generate("hi", 8)
    after = router.summary()["classes"]["standard"]
    assert (after["requests"] - before["requests"], after["met"] - before["met"]) == (2, 2)
    metrics = _get(router, "/metrics")
    line = f'dilaserve_router_requests_total{{slo_class="standard"}} {after["requests"]:.1f}'
    assert line in metrics
    assert json.loads(_get(router, "/health")) == {"status": "serving"}


def test_slo_class_deadline_and_floor_ride_as_fields_or_headers(served):
    tok, router, client = served
    fields = client.completions.create(
        model=MODEL, prompt="hi", max_tokens=8,
        extra_body={"slo_class": "strict", "deadline_ms": 5000, "min_threshold": 0.95})
    assert fields.dilaserve["slo_class"] == "strict"
    assert fields.dilaserve["deadline_ms"] == pytest.approx(5000)
    assert fields.dilaserve["threshold_min"] >= 0.95  # a stricter floor than the class's 0.8
    headers = client.completions.create(
        model=MODEL, prompt="hi", max_tokens=8,
        extra_headers={"X-Dilaserve-SLO-Class": "strict", "X-Dilaserve-Deadline-Ms": "4000"})
    assert headers.dilaserve["slo_class"] == "strict"
    assert headers.dilaserve["deadline_ms"] == pytest.approx(4000)
    default = client.completions.create(model=MODEL, prompt="hi", max_tokens=8)
    assert default.dilaserve["slo_class"] == "standard"  # the policy's default class
    assert default.dilaserve["deadline_ms"] == pytest.approx(20_000)


def test_a_deadline_too_short_is_shed_with_429_and_retry_after(served):
    tok, router, client = served
    for extra in ({"extra_body": {"deadline_ms": 0.001}},
                  {"extra_headers": {"X-Dilaserve-Deadline-Ms": "0.001"}}):
        for stream in (False, True):
            with pytest.raises(openai.RateLimitError) as err:
                client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=24,
                                               stream=stream, **extra)
            assert err.value.response.headers["retry-after"] == "1"
            assert err.value.code == "resource_exhausted"
            assert err.value.body["message"].startswith("shed:")


BAD = [  # (body changes, HTTP status, param)
    ({"model": "gpt-4o"}, 404, "model"),
    ({"n": 2}, 400, "n"),
    ({"max_tokens": 0}, 400, "max_tokens"),
    ({"max_tokens": 65}, 400, "max_tokens"),
    ({"messages": None}, 400, "messages"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "user"}]}, 400, "messages[0].content"),
    ({"messages": [{"role": "robot", "content": "beep"}]}, 400, "messages"),
    ({"logprobs": True}, 400, "logprobs"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "tools"),
    ({"top_p": 0.5}, 400, "top_p"),
    ({"temperature": 500}, 400, "temperature"),
    ({"slo_class": "gold"}, 400, "slo_class"),
    ({"deadline_ms": -1}, 400, "deadline_ms"),
    ({"min_threshold": 2}, 400, "min_threshold"),
    ({"frobnicate": 1}, 400, "frobnicate"),
]


@pytest.mark.parametrize("change, status, param", BAD, ids=[p for _, _, p in BAD])
def test_bad_input_gets_its_code_naming_the_field(served, change, status, param):
    tok, router, client = served
    body = {"model": MODEL, "messages": CHAT, "max_tokens": 24, **change}
    body = {k: v for k, v in body.items() if v is not None}
    code, reply = _post(router, "/v1/chat/completions", json.dumps(body).encode())
    assert code == status, reply
    assert reply["error"]["param"] == param and reply["error"]["message"].startswith(param)


def test_malformed_requests_get_json_errors_and_the_server_keeps_serving(served):
    tok, router, client = served
    code, reply = _post(router, "/v1/chat/completions", b"{not json")
    assert code == 400 and "not valid JSON" in reply["error"]["message"]
    code, reply = _post(router, "/v1/completions", b"[1, 2]")
    assert code == 400 and reply["error"]["message"] == "the body must be a JSON object"
    code, reply = _post(router, "/v1/completions", json.dumps(
        {"model": MODEL, "prompt": ["a", "b"]}).encode())
    assert code == 400 and reply["error"]["param"] == "prompt"
    code, reply = _post(router, "/v1/embeddings", b"{}")
    assert code == 404 and reply["error"]["code"] == "not_found"
    with pytest.raises(openai.BadRequestError) as err:  # an empty prompt
        client.completions.create(model=MODEL, prompt="", max_tokens=8)
    assert err.value.param == "prompt"
    # and it still serves
    ok = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=24)
    assert ok.choices[0].message.content == SPLIT_TEXT


def test_a_deadline_that_passes_at_the_replica_is_504():
    """Routed and admitted (the replica is predicted quick), then its first step outlasts the
    deadline: the replica ends it, and so does the API."""
    with workers(make_worker(engine_class=StuckEngine)) as servers, \
            routing(servers, http_port=0) as (router, _):
        client = _client(router)
        for stream in (False, True):
            with pytest.raises(openai.InternalServerError) as err:
                list(client.completions.create(model="random-test", prompt="abc", max_tokens=8,
                                               stream=stream, extra_body={"deadline_ms": 300}))
            assert err.value.status_code == 504 and err.value.code == "deadline_exceeded"
        assert router.summary()["classes"]["standard"]["expired"] == 2


def test_the_call_limit_counts_http_and_grpc_together_and_answers_429():
    """One call in flight over gRPC fills a limit of one: an HTTP request is refused at once
    with a 429 and Retry-After, and booked as overloaded in its class."""
    with workers(make_worker(engine_class=Crawling)) as servers, \
            routing(servers, http_port=0, max_calls=1) as (router, grpc_client):
        stream = grpc_client.stream(generate_request("abc", 64, deadline_ms=20_000))
        next(iter(stream))  # in flight
        with pytest.raises(openai.RateLimitError) as err:
            _client(router).completions.create(model="random-test", prompt="abc", max_tokens=8)
        assert err.value.response.headers["retry-after"] == "1"
        assert "router.max_concurrent_calls" in err.value.body["message"]
        stream.cancel()
        assert router.summary()["classes"]["standard"]["overloaded"] == 1


def test_a_client_that_leaves_mid_stream_frees_its_row():
    with workers(make_worker(engine_class=Crawling)) as servers, \
            routing(servers, http_port=0) as (router, _):
        stream = _client(router).completions.create(model="random-test", prompt="abc",
                                                    max_tokens=64, stream=True)
        first = next(iter(stream))
        assert first.choices[0].finish_reason is None
        stream.close()  # hang up: the replica is told, as for a gRPC cancel
        with WorkerClient(servers[0].target) as direct:
            stats = wait_for(lambda: (s := direct.stats()).running == 0 and s,
                             what="the row to be freed")
            assert stats.cancelled == 1 and stats.finished == 0
        wait_for(lambda: router.summary()["classes"]["standard"]["cancelled"] == 1)
        assert router.in_flight() == {0: 0}


def test_a_stream_whose_replica_leaves_goes_on_from_the_next_block():
    """The router restarts the request on another replica from block 0; the client, which has
    block 0 already, gets the blocks after it (greedy: the same text), each once."""
    with workers(make_worker(engine_class=Walking), make_worker(engine_class=Walking)) as \
            servers, routing(servers, router=FixedOrder(0, 1), http_port=0) as (router, _):
        client = _client(router)
        stream = iter(client.completions.create(model="random-test", prompt="abc",
                                                max_tokens=24, stream=True))
        chunks = [next(stream)]
        router.set_replicas([endpoint(1, servers[1])])  # replica 0 leaves the set
        chunks += list(stream)
        *blocks, finish = chunks
        assert len(blocks) == 3 and finish.dilaserve["replica"] == "1"
        assert router.summary()["restarts"] == 1
        again = client.completions.create(model="random-test", prompt="abc", max_tokens=24)
        assert "".join(c.choices[0].text for c in blocks) == again.choices[0].text


def _get(router, path: str) -> str:
    url = f"http://127.0.0.1:{router.http_port}{path}"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.read().decode()


def _post(router, path: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{router.http_port}{path}", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
