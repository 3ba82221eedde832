"""`dilaserve gpu-check`'s end-to-end step: the model served by the real worker on its device.

The worker's gRPC server (the `Generate` service with health and reflection, the serving loop,
the scheduler with the step cost just measured, the engine) runs on a thread in this process;
a few requests (chat and plain text) go through the worker's own client at once, so they batch.
It needs what `dilaserve worker` needs: grpcio, grpcio-health-checking, grpcio-reflection,
protobuf >= the generated code's and pydantic (the policy types import it). On a GPU machine
without them they travel as wheels (docs/gpu-check.md); if they do not import, this step is
skipped with the reason and the rest of the check stands.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from dilaserve.benches.gpu_check_shapes import CheckShape
from dilaserve.core.locations import PUBLISHED_PROFILES_DIR
from dilaserve.core.tokenizer import ChatMessage
from dilaserve.profiles.step_cost import StepCostModel
from worker.models.transformer import DiffusionTransformer

PROMPTS = (
    [ChatMessage("user", "Hello, who are you?")],
    "The quick brown fox",
    [ChatMessage("system", "Be brief."), ChatMessage("user", "Sort 3141.")],
    "Diffusion language models decode",
)


def serve_imports() -> str | None:
    """None when the worker's packages import here; else why not, in one line."""
    try:
        import dilaserve.policy  # noqa: F401  (pydantic)
        import worker.client  # noqa: F401
        import worker.service.server  # noqa: F401  (grpc, health, reflection, the proto code)
    except Exception as err:  # ImportError, protobuf's VersionError, grpc's RuntimeError
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"{type(err).__name__}: {first}"
    return None


def serve_check(model: DiffusionTransformer, tokenizer, shape: CheckShape,
                step_cost: StepCostModel) -> dict:
    from dilaserve.policy import WorkerSettings, default_policy
    from dilaserve.profiles.quality import QualityProfile
    from worker.client import WorkerClient
    from worker.service.server import ServerThread
    from worker.service.setup import build_worker

    policy = replace(default_policy(), worker=WorkerSettings(
        block_size=shape.grid.block, cache_mode="dual", max_new_tokens=shape.serve_new_tokens,
        max_rows=shape.serve_rows))
    quality = QualityProfile.load(PUBLISHED_PROFILES_DIR / "quality.json")  # block 32, as served
    worker = build_worker(model, tokenizer, policy, quality, step_cost)
    engine = worker.loop.engine
    server = ServerThread(worker)
    started = time.monotonic()
    server.start()
    try:
        with WorkerClient(server.target) as client:
            client.wait_ready(timeout=30)
            health = client.health()
            prompts = [PROMPTS[i % len(PROMPTS)] for i in range(shape.serve_requests)]

            def one(prompt) -> dict:
                done = client.generate(prompt, shape.serve_new_tokens, timeout=300)
                return {"prompt": prompt if isinstance(prompt, str) else
                        " | ".join(f"{m.role}: {m.content}" for m in prompt),
                        "text": done.text[:80], "tokens": len(done.token_ids),
                        "prompt_tokens": done.prompt_tokens, "finish": done.finish_reason,
                        "forwards": done.forwards, "e2e_ms": done.e2e_ms,
                        "first_block_ms": done.first_block_ms,
                        "deadline_met": done.deadline_met}

            with ThreadPoolExecutor(len(prompts)) as pool:
                requests = list(pool.map(one, prompts))
            stats = client.stats()
    finally:
        server.stop(grace_s=1.0)
    ok = health == "SERVING" and len(requests) == shape.serve_requests and all(
        r["tokens"] > 0 for r in requests) and stats.finished == len(requests)
    return {"status": "ok" if ok else "failed", "device": str(engine.device),
            "dtype": str(engine.dtype).removeprefix("torch."), "health": health,
            "requests": requests, "seconds": time.monotonic() - started,
            "worker_stats": {"finished": stats.finished, "steps": stats.steps,
                             "median_step_ms": stats.median_step_ms,
                             "step_cost_error": stats.step_cost_error,
                             "max_rows": stats.max_rows}}
