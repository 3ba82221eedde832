"""Text and chat over gRPC with a checkpoint's own Hugging Face tokenizer, at a worker and through
the router in front of it (tiny LLaDA-layout checkpoint built here; a scripted engine writes a
known answer whose multi-byte characters straddle block edges)."""

from __future__ import annotations

import grpc
import pytest

from dilaserve.core.steps import FinishReason, Phase, RowOutcome
from dilaserve.core.tokenizer import ChatMessage
from proto import dilaserve_pb2 as pb
from tests.models.test_hf_tokenizer import SPLIT_TEXT
from tests.router.helpers import routing
from tests.service.helpers import COST, policy_for_tests, synthetic_quality
from worker.client import WorkerClient, WorkerError, generate_request
from worker.engine.null_engine import NullEngine
from worker.models.shipped import load
from worker.models.tiny_checkpoint import write_tiny_checkpoint
from worker.service.server import ServerThread
from worker.service.setup import build_worker

pytestmark = pytest.mark.slow

CHAT = [ChatMessage("system", "Be brief."), ChatMessage("user", "Caf\u00e9, \u65e5\u672c?")]


class ScriptedEngine(NullEngine):
    """Commits a fixed answer (then EOS) one whole block per step."""

    answer: tuple[int, ...] = ()

    def _commit_block(self, request_id, row):
        canvas_len = row.seq_len - row.prompt_len
        canvas = (self.answer + (self.eos_id,) * canvas_len)[:canvas_len]
        start = row.block_start - row.prompt_len
        end = min(start + row.block_size, canvas_len)
        block = canvas[start:end]
        if end < canvas_len and block[-1] != self.eos_id:
            row.block_start += len(block)
            return RowOutcome(request_id, Phase.REFRESH, len(block), canvas_len - end, True,
                              False, block_tokens=block)
        self._release(request_id)
        output = self.answer[:canvas_len]
        reason = FinishReason.EOS if len(output) < canvas_len else FinishReason.LENGTH
        return RowOutcome(request_id, Phase.REFRESH, len(block), 0, True, True, reason,
                          block_tokens=block, output_ids=output)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    directory = write_tiny_checkpoint(tmp_path_factory.mktemp("hf") / "tiny-llada")
    model, tok, _ = load(directory)
    ScriptedEngine.answer = tuple(tok.encode(SPLIT_TEXT))
    worker = build_worker(model, tok, policy_for_tests(), synthetic_quality(), COST,
                          engine_class=ScriptedEngine)
    server = ServerThread(worker)
    server.start()
    try:
        with routing([server], tokenizer=tok) as (router, client):
            yield tok, server, router, client
    finally:
        server.stop(grace_s=0.0)


def test_chat_at_the_worker_and_the_router_counts_the_same_tokens(served):
    tok, server, router, via_router = served
    expected = len(tok.encode_chat(CHAT))
    with WorkerClient(server.target) as direct:
        at_worker = direct.generate(CHAT, 24)
    router.take_arrivals()
    at_router = via_router.generate(CHAT, 24)
    (arrival,) = router.take_arrivals()
    assert at_worker.prompt_tokens == at_router.prompt_tokens == arrival.prompt_len == expected
    assert router.summary()["prompt_token_mismatches"] == 0
    for result in (at_worker, at_router):
        assert result.text == SPLIT_TEXT
        assert "".join(p.text for p in result.partials) == result.text
        assert not any("\ufffd" in p.text for p in result.partials)
        assert len(result.partials) >= 3  # the answer spans several blocks of 8


def test_text_prompts_count_with_the_models_tokenizer(served):
    tok, server, router, client = served
    router.take_arrivals()
    result = client.generate("Caf\u00e9 \u65e5\u672c\u8a9e", 8)
    assert result.prompt_tokens == len(tok.encode("Caf\u00e9 \u65e5\u672c\u8a9e"))
    assert router.take_arrivals()[0].prompt_len == result.prompt_tokens


def _invalid_cases(tok):
    over = "word " * 600  # well over the tiny model's context of 512 tokens
    return [
        (generate_request([{"role": "", "content": "x"}], 8), "messages[0].role"),
        (generate_request([ChatMessage("robot", "beep")], 8), "messages"),
        (generate_request(over, 8), "prompt_text"),
        (generate_request([tok.mask_id], 8), "prompt_ids[0]"),
        (generate_request("hi", 10_000), "max_new_tokens"),
        (generate_request("hi", 8, block_size=10_000), "quality.block_size"),
    ]


@pytest.mark.parametrize("where", ["worker", "router"])
def test_bad_input_names_the_field_and_the_server_keeps_serving(served, where):
    tok, server, router, via_router = served
    target = server.target if where == "worker" else router.target
    with WorkerClient(target) as client:
        for request, field in _invalid_cases(tok):
            with pytest.raises(WorkerError) as err:
                _run(client, request)
            assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT, (field, err.value)
            assert err.value.details.startswith(field + ":"), (field, err.value.details)
        # bytes that are not UTF-8 in a string field: named, INVALID_ARGUMENT
        good = generate_request([ChatMessage("user", "xx")], 8).SerializeToString()
        call = client.channel.unary_stream("/dilaserve.v1.Generate/Generate",
                                           request_serializer=lambda b: b,
                                           response_deserializer=pb.GenerateResponse.FromString)
        with pytest.raises(grpc.RpcError) as raw:
            list(call(good.replace(b"xx", b"\xff\xfe"), timeout=10))
        assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raw.value.details() == "messages[0].content: not valid UTF-8"
        # still serving; the canvas of 8 ends inside a character, which comes out as U+FFFD
        cut = client.generate(CHAT, 8)
        assert cut.text == "abcdefg\ufffd" and cut.finish_reason == "length"


def _run(client: WorkerClient, request: pb.GenerateRequest):
    try:
        return list(client.stream(request, timeout=10))
    except grpc.RpcError as err:
        raise WorkerError.from_rpc(err) from None


def test_the_router_checks_the_limits_its_replicas_report(served):
    tok, server, router, client = served
    with WorkerClient(server.target) as direct:
        limits = direct.stats().limits
    assert (limits.max_new_tokens, limits.context_tokens) == (64, 512)
    for target in (server.target, router.target):
        with WorkerClient(target) as c, pytest.raises(WorkerError) as err:
            c.generate("hi", limits.max_new_tokens + 1)
        assert err.value.details == "max_new_tokens: must be in [1, 64], got 65"
