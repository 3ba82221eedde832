"""The model `dilaserve gpu-check` measures: a model directory it writes (config.json, a tokenizer
built here) and random weights made directly on the device.

The structure is built on the meta device (as lean loading builds it: no storage), then every
weight is allocated on the target device in the target dtype and filled there, one tensor at a
time, so no weight passes through host memory and nothing is allocated twice. Step times do not
depend on the weights' values.

The tokenizer is a byte-level BPE trained here (`worker.models.tiny_checkpoint`) and laid out so
that the special tokens sit at the shape's ids (LLaDA's: mask 126336, EOS 126081, ...): the other
ids are reserved placeholders, so the vocabulary fills the embedding as LLaDA's does. It loads
through the same `HFTokenizer` a real checkpoint's tokenizer does.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dilaserve.benches.gpu_check_shapes import CheckShape, StepGrid
from worker.models.checkpoint import empty_model, read_config
from worker.models.config import ModelConfig
from worker.models.tiny_checkpoint import BOS, CHAT_TEMPLATE, EOS, train_tokenizer
from worker.models.transformer import DiffusionTransformer, RotaryTable

INIT_STD = 0.02  # LLaDA's config.json init_std


def build_tokenizer(vocab_size: int, special_ids: dict[str, int]):
    """A `tokenizers.Tokenizer` of exactly `vocab_size` ids with each special token at its id."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    trained = json.loads(train_tokenizer().to_str())["model"]
    regular = [t for t, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1])
               if t not in special_ids]
    taken = set(special_ids.values())
    if len(regular) > min(taken) or max(taken) >= vocab_size:
        raise ValueError(f"tokenizer: {len(regular)} trained tokens and special ids "
                         f"{sorted(taken)} do not fit a vocabulary of {vocab_size}")
    vocab = {token: i for i, token in enumerate(regular)}
    vocab |= {f"<|reserved_{i}|>": i for i in range(len(regular), vocab_size) if i not in taken}
    vocab |= special_ids
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(special_ids))  # already in the vocabulary: their ids are kept
    return tok


def write_model_dir(shape: CheckShape, directory: Path) -> tuple[ModelConfig, list[int]]:
    """config.json and the tokenizer files (no weights); the model config, and the ids of tokens
    that decode to whole text (the LM head keeps only those rows, so the noise reads as words)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(shape.config, indent=2))
    cfg, _ = read_config(directory)
    tok = build_tokenizer(cfg.vocab_size, shape.special_ids)
    tok.save(str(directory / "tokenizer.json"))
    tokenizer_config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS,
                        "eos_token": EOS, "pad_token": EOS, "add_bos_token": False,
                        "add_eos_token": False, "model_max_length": cfg.max_seq_len,
                        "chat_template": CHAT_TEMPLATE}
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    special = set(shape.special_ids.values())
    text_ids = []
    for i in range(min(special)):
        piece = tok.decode([i], skip_special_tokens=False)
        if piece.strip() and "\ufffd" not in piece and not piece.startswith("<|reserved_"):
            text_ids.append(i)
    return cfg, text_ids


def random_model(cfg: ModelConfig, dtype: torch.dtype, device: torch.device, seed: int = 0,
                 text_ids: list[int] | None = None) -> DiffusionTransformer:
    """The model with random weights allocated and filled on `device`, tensor by tensor."""
    model = empty_model(cfg)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, placeholder in list(model.named_parameters()):
            weight = torch.empty(placeholder.shape, dtype=dtype, device=device)
            if name.endswith("norm.weight"):
                weight.fill_(1.0)
            else:
                weight.normal_(0.0, INIT_STD, generator=generator)
            owner, _, attr = name.rpartition(".")
            model.get_submodule(owner)._parameters[attr] = torch.nn.Parameter(
                weight, requires_grad=False)
        if cfg.tie_embeddings:
            model.lm_head.weight = model.embed.weight
        elif text_ids is not None:
            keep = torch.zeros(cfg.vocab_size, dtype=torch.bool, device=device)
            keep[torch.tensor(text_ids, device=device)] = True
            model.lm_head.weight[~keep] = 0.0
    model.rotary = RotaryTable(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta).to(device)
    return model.eval()


def weight_bytes(model: DiffusionTransformer) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def kv_bytes_per_token(cfg: ModelConfig, dtype: torch.dtype) -> int:
    """K and V of every layer for one token, as the engine's pool holds them."""
    elem = torch.tensor([], dtype=dtype).element_size()
    return 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim * elem


def bytes_needed(cfg: ModelConfig, dtype: torch.dtype, grid: StepGrid) -> int:
    """The weights and the step grid's KV pool (rows x (longest sequence + a scratch column))."""
    elem = torch.tensor([], dtype=dtype).element_size()
    return cfg.num_parameters() * elem + kv_bytes_per_token(cfg, dtype) * grid.max_rows * (
        grid.max_seq_len + 1)
