"""What a worker reports for the router: who served a request, and its load model's inputs."""

from __future__ import annotations

import pytest

from tests.service.helpers import serving

pytestmark = pytest.mark.slow


def test_final_names_the_worker_and_stats_carry_the_load_model():
    with serving() as (server, client):
        result = client.generate("abc", 16)
        assert result.replica == server.target
        stats = client.stats()
        assert stats.block_size == 8
        # the synthetic profile's tokens per step at tau 0.9, block 8: (1 + 10 * 0.1) * 0.5
        assert stats.tokens_per_step == pytest.approx(1.0)
        assert stats.backlog_steps == 0.0 and not stats.replicas
        client.control(threshold_range=(0.5, 0.5))  # it follows the live range: (1 + 5) * 0.5
        assert client.stats().tokens_per_step == pytest.approx(3.0)
