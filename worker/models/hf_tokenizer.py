"""A checkpoint's own Hugging Face tokenizer, read from its local directory with `transformers`.

Files: tokenizer.json (required) and tokenizer_config.json (special tokens, chat template; a
chat_template.jinja beside them also counts), as Hugging Face checkpoints ship them. Nothing is
fetched from a hub and no remote code runs: the tokenizer is built as the PreTrainedTokenizerFast
the files describe (importing no torch).

Special ids, each from the first source that has it: the model's config.json (what the model was
trained with: mask_token_id, eos_token_id, pad_token_id), then the tokenizer's own special tokens.
The answer ends at any stop token: EOS, the ids in generation_config.json's eos_token_id, and the
chat end-of-turn tokens the vocabulary holds (LLaDA's <|eot_id|>, ChatML's <|im_end|>, ...).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dilaserve.core.tokenizer import ChatMessage, TokenizerError, cut_at_stop
from worker.models.tokenizer import read_json_object

# end-of-turn tokens of the common chat templates (Llama 3 / LLaDA, ChatML, Phi, Gemma, GPT-2)
END_OF_TURN_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")
MASK_TOKENS = ("<|mdm_mask|>", "<|mask|>", "[MASK]", "<mask>")


def save_tokenizer_files(directory: Path, tokenizer: Any, special_tokens: dict[str, str],
                         max_length: int, **config: Any) -> None:
    """A `tokenizers.Tokenizer` written as the files this module loads: tokenizer.json,
    tokenizer_config.json (PreTrainedTokenizerFast, `special_tokens` such as {"eos_token": ...},
    no BOS or EOS added by encoding, then `config`'s keys) and special_tokens_map.json."""
    tokenizer.save(str(directory / "tokenizer.json"))
    settings = {"tokenizer_class": "PreTrainedTokenizerFast", **special_tokens,
                "add_bos_token": False, "add_eos_token": False, "model_max_length": max_length,
                **config}
    (directory / "tokenizer_config.json").write_text(json.dumps(settings, indent=2) + "\n")
    (directory / "special_tokens_map.json").write_text(json.dumps(special_tokens, indent=2) + "\n")


def _ids(value: Any) -> list[int]:
    """A config's token id entry: an int, a list of ints, or absent."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


class HFTokenizer:
    def __init__(self, fast: Any, mask_id: int, eos_id: int, pad_id: int,
                 stop_ids: frozenset[int], source: Path) -> None:
        self._fast = fast
        self._mask_id = mask_id
        self._eos_id = eos_id
        self._pad_id = pad_id
        self._stop_ids = stop_ids
        self.source = source
        # transformers re-applies truncation/padding state on every call, which a concurrent
        # call on the same Rust tokenizer refuses ("Already borrowed"): one call at a time
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: Path | str) -> HFTokenizer:
        directory = Path(directory)
        path = directory / "tokenizer.json"
        config = read_json_object(directory / "config.json")
        generation = read_json_object(directory / "generation_config.json")
        read_json_object(directory / "tokenizer_config.json")  # a broken one fails here, by name
        try:
            from transformers import PreTrainedTokenizerFast
        except ImportError as err:  # pragma: no cover - a dependency of the package
            raise TokenizerError(f"{path}: reading it needs transformers ({err})") from None
        try:
            fast = PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
        except Exception as err:  # transformers raises many kinds for a file that is not one
            raise TokenizerError(f"{path}: not a Hugging Face tokenizer ({type(err).__name__}: "
                                 f"{err})") from None
        vocab = fast.get_vocab()

        def named(*tokens: str) -> list[int]:
            return [vocab[t] for t in tokens if t in vocab]

        eos = _ids(config.get("eos_token_id")) + _ids(fast.eos_token_id)
        if not eos:
            raise TokenizerError(f"{directory}: no EOS token (config.json eos_token_id or the "
                                 f"tokenizer's eos_token)")
        own_mask = _ids(fast.mask_token_id) + named(*MASK_TOKENS)
        mask = _ids(config.get("mask_token_id")) + own_mask
        if not mask:
            raise TokenizerError(f"{directory}: no mask token (config.json mask_token_id or the "
                                 f"tokenizer's mask_token)")
        for what, ours, theirs in (("mask_token_id", mask, own_mask),
                                   ("eos_token_id", eos, _ids(fast.eos_token_id))):
            if theirs and ours[0] != theirs[0]:
                raise TokenizerError(
                    f"{directory}: config.json {what} is {ours[0]} but the tokenizer's is "
                    f"{theirs[0]} ({fast.convert_ids_to_tokens(theirs[0])}): is it this "
                    f"model's tokenizer?")
        pad = _ids(config.get("pad_token_id")) + _ids(fast.pad_token_id) + eos
        stops = set(eos) | set(_ids(generation.get("eos_token_id"))) | set(
            named(*END_OF_TURN_TOKENS))
        return cls(fast, mask[0], eos[0], pad[0], frozenset(stops), directory)

    @property
    def pad_id(self) -> int:
        return self._pad_id

    @property
    def mask_id(self) -> int:
        return self._mask_id

    @property
    def eos_id(self) -> int:
        return self._eos_id

    @property
    def stop_ids(self) -> frozenset[int]:
        return self._stop_ids

    @property
    def vocab_size(self) -> int:
        return len(self._fast)

    @property
    def has_chat_template(self) -> bool:
        return bool(self._fast.chat_template)

    def encode(self, text: str) -> list[int]:
        with self._lock:
            try:
                return list(self._fast.encode(text))
            except Exception as err:  # the Rust backend's: a word-level vocabulary without [UNK]
                vocab = self._fast.get_vocab()
                unknown = "".join(sorted({c for c in text if c not in vocab}))
                if unknown:
                    raise ValueError("prompt: characters outside the model's vocabulary: "
                                     f"{unknown!r}") from None
                raise ValueError(f"prompt: the tokenizer cannot encode it: {err}") from None

    def encode_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        if not self.has_chat_template:
            raise ValueError("this model's tokenizer has no chat template; send prompt_text")
        conversation = [{"role": m.role, "content": m.content} for m in messages]
        with self._lock:
            try:
                text = self._fast.apply_chat_template(conversation, tokenize=False,
                                                      add_generation_prompt=True)
            except Exception as err:  # jinja2's TemplateError, raise_exception(), a bad role
                raise ValueError(f"the chat template rejected the messages: {err}") from None
            # the template writes the special tokens (BOS, headers) itself
            return list(self._fast.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        with self._lock:
            return self._fast.decode(list(cut_at_stop(ids, self._stop_ids)),
                                     skip_special_tokens=True)
