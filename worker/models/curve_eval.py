"""Held-out exact match during training (the learning curve): a plain threshold decoder, no KV
cache, blocks left to right, as Fast-dLLM commits: every masked position of the current block
whose top probability reaches the threshold, and at least the most confident one per step.

Training's own small check, independent of the serving engine; the committed quality profile is
measured by the engine (`dilaserve profile --what quality`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worker.models.tasks import Example
from worker.models.transformer import DiffusionTransformer


@dataclass(frozen=True)
class CurvePoint:
    task: str
    exact_match: float
    steps_per_request: float


@torch.no_grad()
def decode(model: DiffusionTransformer, prompts: list[list[int]], canvas: int, block: int,
           threshold: float, mask_id: int, pad_id: int) -> tuple[list[list[int]], list[int]]:
    """Answers (canvas ids) and the denoising steps each took."""
    longest = max(len(p) for p in prompts)
    batch = len(prompts)
    tokens = torch.full((batch, longest + canvas), pad_id, dtype=torch.long)
    key_mask = torch.zeros_like(tokens, dtype=torch.bool)
    starts = []
    for row, p in enumerate(prompts):
        tokens[row, : len(p)] = torch.tensor(p)
        tokens[row, len(p): len(p) + canvas] = mask_id
        key_mask[row, : len(p) + canvas] = True
        starts.append(len(p))
    index = torch.tensor(starts)[:, None] + torch.arange(canvas)[None, :]
    steps = torch.zeros(batch, dtype=torch.long)
    while True:
        answer = tokens.gather(1, index)
        masked = answer == mask_id
        if not masked.any():
            break
        # each row's current block: the first that still holds a mask
        first = torch.where(masked.any(1), masked.float().argmax(1), canvas)
        block_of = torch.arange(canvas)[None, :] // block
        current = masked & (block_of == (first // block)[:, None])
        logits = model(tokens, key_mask).gather(
            1, index[..., None].expand(-1, -1, model.config.vocab_size))
        logits[..., [mask_id, pad_id]] = float("-inf")  # a guess is never a mask or a pad
        probs = logits.float().softmax(-1)
        conf, guess = probs.max(-1)
        conf = torch.where(current, conf, -1.0)
        commit = current & (conf >= threshold)
        best = conf.argmax(1)
        active = current.any(1)
        commit[torch.arange(batch), best] |= active
        steps += active.long()
        answer = torch.where(commit, guess, answer)
        tokens.scatter_(1, index, answer)
    return tokens.gather(1, index).tolist(), steps.tolist()


def exact_match(model: DiffusionTransformer, tok, examples: list[Example],
                canvas_of: dict[str, int], block: int = 32, threshold: float = 0.9
                ) -> list[CurvePoint]:
    """Per task: the share of answers decoded exactly, and mean steps per request."""
    was_training = model.training
    model.eval()
    out = []
    for task in dict.fromkeys(ex.task for ex in examples):
        group = [ex for ex in examples if ex.task == task]
        ids, steps = decode(model, [tok.encode(ex.prompt) for ex in group], canvas_of[task],
                            block, threshold, tok.mask_id, tok.pad_id)
        right = sum(tok.decode(a) == ex.answer for a, ex in zip(ids, group))
        out.append(CurvePoint(task, right / len(group), sum(steps) / len(steps)))
    model.train(was_training)
    return out
