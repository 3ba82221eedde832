"""TP=2 over gloo (two processes) runs the same steps as TP=1 on the shipped model at
temperature 0, keeps its ranks in step through a refused step and a new engine, survives idle
time on heartbeats, and stops cleanly."""

from __future__ import annotations

import shutil
import time

import pytest
import torch

from dilaserve.core.steps import AdmitRow, DecodeSettings, StepPlan
from tests.parallel.scenario import Script, drive, mixed_script
from tests.parallel.tp_helpers import HEARTBEAT_S, TIMEOUT_S, local_replica
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.models.checkpoint import save_llada_format
from worker.models.shipped import SHIPPED_MODEL_DIR, load
from worker.parallel.engine import TensorParallelEngine
from worker.parallel.group import local_init_method
from worker.parallel.local import LocalRanks, join_followers, spawn_followers
from worker.parallel.rank0 import start_rank0

pytestmark = pytest.mark.slow

LIMITS = EngineConfig(max_rows=8)


@pytest.fixture(scope="module")
def shipped():
    model, tok, _ = load()
    return model, tok


@pytest.fixture(scope="module")
def replica():
    with local_replica(2) as (rank0, followers):
        yield rank0, followers


def _reference(shipped, script: Script) -> list[tuple]:
    return drive(DenoisingEngine(shipped[0], LIMITS), script)


def test_tp2_runs_the_same_steps_as_tp1(shipped, replica):
    rank0, _ = replica
    script = mixed_script(shipped[1])
    expected = _reference(shipped, script)
    got = drive(TensorParallelEngine(rank0.model, LIMITS, rank0.leader), script)
    assert got == expected  # every row's phase, commits, finished blocks and outputs, per step
    assert len(expected) > 10
    outputs = [o for step in got for o in step if o.done]
    assert len(outputs) == 7 and all(o.output_ids for o in outputs)


def test_the_shard_holds_half_the_heads_columns_and_kv_pool(shipped, replica):
    rank0, _ = replica
    full, shard = shipped[0], rank0.model
    assert shard.shards == 2 and shard.kv_heads == full.config.num_kv_heads // 2
    q_rows = shard.blocks[0].attn.q_proj.weight.shape[0]
    assert q_rows * 2 == full.blocks[0].attn.q_proj.weight.shape[0]
    assert shard.blocks[0].mlp.down_proj.weight.shape[1] * 2 == full.config.intermediate_size
    engine = TensorParallelEngine(shard, LIMITS, rank0.leader)
    assert engine.pool.k.shape[2] * 2 == DenoisingEngine(full, LIMITS).pool.k.shape[2]


def test_a_refused_step_then_a_new_engine_keeps_ranks_in_step(shipped, replica):
    rank0, _ = replica
    engine = TensorParallelEngine(rank0.model, LIMITS, rank0.leader)
    with pytest.raises(ValueError, match="no row 'ghost'"):
        engine.step(StepPlan(run=("ghost",)))
    # what the serving loop does after a failed step: a fresh engine, announced to the followers
    engine = TensorParallelEngine(rank0.model, LIMITS, rank0.leader)
    script = mixed_script(shipped[1], cache_modes=("prefix", "dual"))
    assert drive(engine, script) == _reference(shipped, script)


def test_idle_replica_stays_up_on_heartbeats(shipped, replica):
    rank0, followers = replica
    time.sleep(TIMEOUT_S + 2 * HEARTBEAT_S)  # longer than a follower waits for a silent rank 0
    assert all(p.is_alive() for p in followers)
    prompt = tuple(shipped[1].encode("sort:3141>"))
    row = AdmitRow("after-idle", prompt, 16, DecodeSettings(block_size=8, threshold=0.9))
    engine = TensorParallelEngine(rank0.model, LIMITS, rank0.leader)
    result = engine.step(StepPlan(admit=(row,), run=("after-idle",)))
    assert result.outcomes[0].committed >= 1


def test_stop_ends_the_followers_cleanly(replica):
    rank0, followers = replica
    started = time.monotonic()
    rank0.close()
    assert join_followers(followers, 20.0) == [0]  # exit status 0: they left on Stop
    assert time.monotonic() - started < 10.0
    rank0.close()  # idempotent; the fixture closes again


def test_followers_adopt_rank0_tokens_even_when_their_head_disagrees(shipped, tmp_path):
    """Rank 1 gets a checkpoint whose LM head is negated: left to itself it would commit other
    tokens, and its next forwards (so rank 0's all-reduced states) would drift from TP=1."""
    model, tok = shipped
    wrong = load()[0]
    with torch.no_grad():
        wrong.lm_head.weight.neg_()
    save_llada_format(wrong, tmp_path)  # the shipped model's layout, with its tokenizer files
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(SHIPPED_MODEL_DIR / name, tmp_path)
    init_method = local_init_method()
    ranks = LocalRanks(timeout_s=TIMEOUT_S, start_timeout_s=60.0)
    followers = spawn_followers(2, init_method, tmp_path, ranks)
    try:
        rank0 = start_rank0(2, init_method, timeout_s=TIMEOUT_S, start_timeout_s=60.0)
    except BaseException:
        join_followers(followers, 1.0)
        raise
    try:
        script = mixed_script(tok)
        engine = TensorParallelEngine(rank0.model, LIMITS, rank0.leader)
        assert drive(engine, script) == _reference(shipped, script)
    finally:
        rank0.close()
        assert join_followers(followers, 20.0) == [0]
