"""The masked-diffusion training batch, loss and update that both recipes share (`train` for
tiny-dlm, `long_recipe` + `resumable_train` for tiny-dlm-long).

Loss as in LLaDA/MDLM: per sequence t ~ U(eps, 1); each canvas token (answer and the EOS fill after
it) is masked with probability t; cross-entropy on masked tokens weighted 1/t, divided by
batch x canvas. The recipes choose the task, the rows and the canvas; what follows is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from worker.models.tasks import Example

EPS = 1e-3  # the least masking rate a sequence draws


class MaskedBatch(NamedTuple):
    noisy: torch.Tensor  # (rows, length): prompt + canvas, canvas tokens masked where `masked`
    key_mask: torch.Tensor  # (rows, length): True on real tokens, False on the padding after them
    canvas_pos: torch.Tensor  # (rows, canvas): each canvas token's position in its row
    targets: torch.Tensor  # (rows, canvas): the answer and its EOS fill
    masked: torch.Tensor  # (rows, canvas): the tokens the loss is over
    t: torch.Tensor  # (rows, 1): each row's masking rate


def masked_batch(tok, examples: Sequence[Example], canvas: int,
                 gen: torch.Generator) -> MaskedBatch:
    """Rows of prompt + answer + EOS fill to `canvas`, masked at a rate drawn from `gen`."""
    batch = len(examples)
    prompts = [tok.encode(ex.prompt) for ex in examples]
    length = max(len(p) for p in prompts) + canvas
    tokens = torch.full((batch, length), tok.pad_id, dtype=torch.long)
    key_mask = torch.zeros((batch, length), dtype=torch.bool)
    canvas_pos = torch.zeros((batch, canvas), dtype=torch.long)
    for row, (prompt, ex) in enumerate(zip(prompts, examples)):
        answer = tok.encode(ex.answer)
        seq = prompt + answer + [tok.eos_id] * (canvas - len(answer))
        tokens[row, : len(seq)] = torch.tensor(seq)
        key_mask[row, : len(seq)] = True
        canvas_pos[row] = torch.arange(len(prompt), len(seq))
    targets = tokens.gather(1, canvas_pos)
    t = torch.rand(batch, 1, generator=gen) * (1 - EPS) + EPS
    masked = torch.rand(batch, canvas, generator=gen) < t
    noisy = tokens.clone()
    noisy.scatter_(1, canvas_pos, torch.where(masked, tok.mask_id, targets))
    return MaskedBatch(noisy, key_mask, canvas_pos, targets, masked, t)


def masked_loss(model, b: MaskedBatch) -> torch.Tensor:
    positions = torch.arange(b.noisy.shape[1]).expand_as(b.noisy)
    hidden = model.hidden_states(b.noisy, positions, b.key_mask)
    canvas_hidden = hidden.gather(1, b.canvas_pos[..., None].expand(-1, -1, hidden.shape[-1]))
    logits = model.logits(canvas_hidden[b.masked])
    ce = F.cross_entropy(logits, b.targets[b.masked], reduction="none")
    weights = (1.0 / b.t).expand_as(b.masked)[b.masked]
    return (ce * weights).sum() / b.masked.numel()


def train_step(model, opt: torch.optim.Optimizer, b: MaskedBatch) -> float:
    """One update on `b` (gradients clipped to norm 1); the batch's loss."""
    loss = masked_loss(model, b)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()
