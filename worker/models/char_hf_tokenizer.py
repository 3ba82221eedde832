"""A character-level Hugging Face tokenizer built with `tokenizers`: one token per character of a
fixed alphabet, with LLaDA's special tokens in the same roles. Written as tokenizer.json +
tokenizer_config.json + special_tokens_map.json, so a model that uses it loads through the same
path as a LLaDA checkpoint (`worker.models.hf_tokenizer`).
"""

from __future__ import annotations

from pathlib import Path

from worker.models.hf_tokenizer import save_tokenizer_files
from worker.models.tiny_checkpoint import EOS, MASK

PAD = "<|pad|>"
SPECIALS = (PAD, MASK, EOS)  # ids 0, 1, 2


def build(alphabet: str):
    """The `tokenizers.Tokenizer`: each character of `alphabet` is one token, decoded joined."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    if len(set(alphabet)) != len(alphabet):
        raise ValueError("tokenizer alphabet: characters repeat")
    vocab = {token: i for i, token in enumerate((*SPECIALS, *alphabet))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(list(SPECIALS))
    return tok


def special_ids() -> dict[str, int]:
    return {"pad": SPECIALS.index(PAD), "mask": SPECIALS.index(MASK), "eos": SPECIALS.index(EOS)}


def write(directory: Path | str, alphabet: str, max_length: int) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_tokenizer_files(directory, build(alphabet),
                         {"eos_token": EOS, "pad_token": PAD, "mask_token": MASK}, max_length,
                         clean_up_tokenization_spaces=False)
