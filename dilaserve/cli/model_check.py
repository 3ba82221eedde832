"""A policy checked against a checkpoint directory without loading its weights (`dilaserve
policy validate --model DIR`): the config is one dilaserve reads, the tokenizer loads and belongs
to the model, and the worker settings fit the model's context."""

from __future__ import annotations

from pathlib import Path

from dilaserve.core.limits import RequestLimits
from dilaserve.core.steps import EngineLimits
from dilaserve.policy import Policy


def check_policy_against_model(policy: Policy, directory: Path) -> list[str]:
    from worker.models.checkpoint import read_config
    from worker.models.tokenizer import load_tokenizer
    from worker.service.setup import check_tokenizer_fits

    if not (directory / "config.json").is_file():
        raise ValueError(f"--model: {directory} has no config.json")
    cfg, fmt = read_config(directory)
    lines = [f"model: {directory} ({fmt} format; {cfg.num_layers} layers, hidden "
             f"{cfg.hidden_size}, {cfg.vocab_size} embedding rows, context {cfg.max_seq_len} "
             f"tokens; weights not read)"]
    tok = load_tokenizer(directory)
    if tok is None:
        lines.append("tokenizer: none (no tokenizer.json): requests must send prompt_ids")
    else:
        check_tokenizer_fits(tok, cfg.vocab_size, cfg.mask_token_id)
        chat = "a chat template" if tok.has_chat_template else "no chat template"
        lines.append(f"tokenizer: {type(tok).__name__}, {tok.vocab_size} tokens, {chat}, mask "
                     f"{tok.mask_id}, answers end at {sorted(tok.stop_ids)}")
    w = policy.worker
    context = min(cfg.max_seq_len, w.max_tokens or cfg.max_seq_len)
    if w.max_new_tokens >= context:
        raise ValueError(f"worker.max_new_tokens: {w.max_new_tokens} leaves no room for a prompt "
                         f"in the model's context of {context} tokens")
    limits = RequestLimits.of(w.max_new_tokens, EngineLimits(1, context, cfg.max_seq_len),
                              cfg.vocab_size, cfg.mask_token_id)
    if w.block_size > limits.max_block_size:
        raise ValueError(f"worker.block_size: {w.block_size} is larger than the largest canvas "
                         f"({limits.max_block_size})")
    lines.append(f"request limits: max_new_tokens <= {limits.max_new_tokens}, prompt + canvas "
                 f"<= {limits.context_tokens} tokens")
    return lines
