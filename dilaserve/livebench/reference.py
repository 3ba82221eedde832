"""The accuracy baseline of a live run: each distinct (prompt, canvas) of the workload decoded
here, unloaded, at the quality profile's reference threshold and block (tau 0.9, block 32), the
setting `static` serves at. A policy's accuracy drop is then paired: over the requests it
finished, the share the reference got right minus the share it got right (the same prompts, so
the task mix of what each policy happens to finish does not move the figure)."""

from __future__ import annotations

from collections.abc import Iterable

from dilaserve.livebench.workload import LiveRequest

BATCH = 16


def reference_correct(requests: Iterable[LiveRequest], threshold: float, block_size: int,
                      cache_mode: str, model: str | None = None) -> dict[tuple[str, int], bool]:
    """(prompt, canvas) -> whether the reference decode gives the exact answer."""
    import torch

    from dilaserve.core.steps import AdmitRow, DecodeSettings
    from worker.engine.engine import DenoisingEngine, EngineConfig
    from worker.engine.runner import run_to_completion
    from worker.models.shipped import load

    torch.set_num_threads(1)
    wanted: dict[tuple[str, int], str] = {}
    for r in requests:
        wanted.setdefault((r.prompt, r.canvas), r.answer)
    loaded, tok, _ = load(model)
    settings = DecodeSettings(threshold=threshold, block_size=block_size, cache_mode=cache_mode)
    keys = sorted(wanted)
    rows = [AdmitRow(str(i), tuple(tok.encode(p)), canvas, settings)
            for i, (p, canvas) in enumerate(keys)]
    engine = DenoisingEngine(loaded, EngineConfig(max_rows=BATCH))
    report = run_to_completion(engine, rows, BATCH)
    return {key: tok.decode(report.completions[str(i)].output_ids) == wanted[key]
            for i, key in enumerate(keys)}
