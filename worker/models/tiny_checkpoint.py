"""A tiny checkpoint laid out like LLaDA-8B-Instruct's Hugging Face repository, for trying the
Hugging Face path without downloading 16 GB: LLaDA's config.json keys (small sizes), random
weights in sharded safetensors with their index, and a byte-level BPE tokenizer trained here with
`tokenizers`, with LLaDA's special tokens and a Llama-3-style chat template.

    dilaserve tiny-checkpoint DIR      # then: dilaserve generate --model DIR --chat "hello"

Its answers are noise (random weights; the LM head rows of tokens that are not whole text are
zeroed, so the noise at least reads as words); every file is real and goes through the code a
real checkpoint does. Deterministic for a seed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from worker.models.checkpoint import save_llada_format
from worker.models.config import ModelConfig
from worker.models.hf_tokenizer import save_tokenizer_files
from worker.models.transformer import DiffusionTransformer

# LLaDA-8B-Instruct's special tokens (../shared/llada-8b-instruct/README.md), in the same roles
BOS, EOS, MASK = "<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>"
HEADER_START, HEADER_END, END_OF_TURN = "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
SPECIAL_TOKENS = (BOS, EOS, MASK, HEADER_START, HEADER_END, END_OF_TURN)

# Llama 3's structure, as LLaDA's: BOS, then per message its header, two newlines, the trimmed
# content and end of turn; the assistant header opens the answer. Unknown roles are refused.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + message['role'] + '; roles are system, user, "
    "assistant') }}"
    "{% endif %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

# a small corpus with multi-byte characters, so that some characters span several tokens
_CORPUS = (
    "The quick brown fox jumps over the lazy dog. Diffusion language models decode a block of "
    "masked positions in parallel and commit every token whose confidence clears a threshold. "
    "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e na\u00efve \u00fcber stra\u00dfe se\u00f1or. "
    "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3002 \u4e2d\u6587\u5b57\u7b26\u3002 "
    "\u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439\u0442\u0435. "
    "Emoji \U0001f600 \U0001f680 \u2728. Numbers 0123456789 and symbols +-*/=<>()[]{}."
)


def train_tokenizer(vocab_size: int = 400):
    """A byte-level BPE tokenizer (any UTF-8 text encodes) with LLaDA's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    return tok


def write_tiny_checkpoint(directory: Path | str, seed: int = 0, hidden: int = 64,
                          layers: int = 2, heads: int = 4, max_seq_len: int = 512) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer()
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    vocab = -(-tok.get_vocab_size() // 64) * 64  # embedding rows rounded up, as LLaDA's are
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=vocab, hidden_size=hidden, num_layers=layers, num_heads=heads,
                      num_kv_heads=heads, intermediate_size=2 * hidden, max_seq_len=max_seq_len,
                      mask_token_id=ids[MASK], eos_token_id=ids[EOS], pad_token_id=ids[EOS],
                      rope_theta=500000.0, name=directory.name)
    model = DiffusionTransformer(cfg).eval()
    with torch.no_grad():  # its noise reads as words: tokens that are not whole text never win
        for token_id in range(vocab):
            piece = tok.decode([token_id], skip_special_tokens=False)
            if token_id >= tok.get_vocab_size() or not piece.strip() or "\ufffd" in piece:
                model.lm_head.weight[token_id] = 0.0
        model.lm_head.weight.mul_(4.0)
    save_llada_format(model, directory)
    save_tokenizer_files(directory, tok, {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS},
                         max_seq_len, chat_template=CHAT_TEMPLATE)
    return directory
