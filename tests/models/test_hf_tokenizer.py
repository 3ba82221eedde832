"""A checkpoint's own Hugging Face tokenizer (tiny LLaDA-layout checkpoint built here), the text
stream that releases block texts, and checking a policy against a checkpoint without weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dilaserve.cli.main import main
from dilaserve.core.tokenizer import ChatMessage, Tokenizer, TokenizerError
from worker.models.hf_tokenizer import HFTokenizer
from worker.models.tiny_checkpoint import END_OF_TURN, EOS, MASK, write_tiny_checkpoint
from worker.models.tokenizer import CharTokenizer, load_tokenizer
from worker.service.text_stream import TextStream

SHARED_CONFIG = Path(__file__).resolve().parents[3] / "shared" / "llada-8b-instruct" / "config.json"
# characters the tiny tokenizer's corpus lacks: their UTF-8 bytes stay separate byte tokens
SPLIT_TEXT = "abcdefg\u20ac\U0001d11e\u03a9 ok"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("hf") / "tiny-llada")


@pytest.fixture(scope="module")
def tok(tiny) -> HFTokenizer:
    loaded = load_tokenizer(tiny)
    assert isinstance(loaded, HFTokenizer)
    return loaded


def test_both_tokenizers_satisfy_the_protocol(tok):
    assert isinstance(tok, Tokenizer) and isinstance(CharTokenizer(), Tokenizer)


def test_special_ids_come_from_the_checkpoint_files(tiny, tok):
    config = json.loads((tiny / "config.json").read_text())
    fast = tok._fast
    assert tok.mask_id == config["mask_token_id"] == fast.convert_tokens_to_ids(MASK)
    assert tok.eos_id == config["eos_token_id"] == fast.convert_tokens_to_ids(EOS)
    # the answer ends at EOS and at the end of a chat turn
    assert tok.stop_ids == {tok.eos_id, fast.convert_tokens_to_ids(END_OF_TURN)}
    assert tok.has_chat_template and not CharTokenizer().has_chat_template


def test_chat_template_count_is_the_tokenizers_own(tok):
    chat = [ChatMessage("system", "Be brief."), ChatMessage("user", "  Caf\u00e9?  ")]
    ids = tok.encode_chat(chat)
    own = tok._fast.apply_chat_template([{"role": m.role, "content": m.content} for m in chat],
                                        tokenize=True, add_generation_prompt=True)
    own = own["input_ids"] if not isinstance(own, list) else own
    assert ids == list(own)
    text = tok._fast.decode(ids)
    assert text.startswith("<|startoftext|><|start_header_id|>system")
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert "Caf\u00e9?<|eot_id|>" in text  # content trimmed, turn closed


def test_a_role_the_template_refuses_is_a_value_error(tok):
    with pytest.raises(ValueError, match="unknown role robot"):
        tok.encode_chat([ChatMessage("robot", "beep")])
    with pytest.raises(ValueError, match="no chat template"):
        CharTokenizer().encode_chat([ChatMessage("user", "hi")])


def test_decode_stops_at_the_end_of_turn_and_skips_specials(tok):
    ids = tok.encode("hello") + [min(tok.stop_ids - {tok.eos_id})] + tok.encode("after")
    assert tok.decode(ids) == "hello"


def test_a_broken_tokenizer_file_is_an_error_naming_it(tiny, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    (broken / "tokenizer.json").write_text('{"version": "1.0", "model": 42}')
    with pytest.raises(TokenizerError, match=r"broken/tokenizer\.json: not a Hugging Face"):
        load_tokenizer(broken)
    (broken / "tokenizer.json").write_text("not json")
    with pytest.raises(TokenizerError, match=r"tokenizer\.json: not a readable tokenizer"):
        load_tokenizer(broken)
    (broken / "tokenizer.json").unlink()
    assert load_tokenizer(broken) is None  # no tokenizer: prompts come as ids


def test_text_stream_holds_a_split_character_until_its_last_byte(tok):
    ids = tok.encode(SPLIT_TEXT)
    blocks = [ids[i:i + 8] for i in range(0, len(ids), 8)]
    # the case is really there: some block boundary cuts a character in two
    assert any(tok.decode(ids[:i + 8]).endswith("\ufffd") for i in range(0, len(ids) - 8, 8))
    stream = TextStream(tok)
    texts = [stream.push(b, last=i == len(blocks) - 1) for i, b in enumerate(blocks)]
    assert "".join(texts) == SPLIT_TEXT == stream.text
    assert not any("\ufffd" in t for t in texts)
    assert TextStream(None).push(ids) == ""


def test_generate_chat_locally_on_the_tiny_checkpoint(tiny, capsys):
    assert main(["generate", "--model", str(tiny), "--chat", "--system", "Be brief.", "Hi!",
                 "--max-new-tokens", "16", "--block-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "Hi! -> " in out and "prompt + " in out and "answer tokens" in out


def test_policy_validate_against_a_checkpoint_without_weights(tiny, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny / name, bare / name)
    policy = Path(__file__).resolve().parents[2] / "deploy" / "policies" / "default.yaml"
    assert main(["policy", "validate", str(policy), "--model", str(bare)]) == 0
    out = capsys.readouterr().out
    assert "weights not read" in out and "a chat template" in out and "request limits" in out
    # a tokenizer that is not this model's is refused
    config = json.loads((bare / "config.json").read_text())
    (bare / "config.json").write_text(json.dumps({**config, "mask_token_id": 7}))
    assert main(["policy", "validate", str(policy), "--model", str(bare)]) == 2
    assert "config.json mask_token_id is 7 but the tokenizer's is 2" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED_CONFIG.is_file(), reason="needs ../shared/llada-8b-instruct")
def test_llada_8b_config_validates_with_the_policy(tmp_path, capsys):
    shutil.copy(SHARED_CONFIG, tmp_path / "config.json")
    policy = Path(__file__).resolve().parents[2] / "deploy" / "policies" / "default.yaml"
    assert main(["policy", "validate", str(policy), "--model", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "32 layers, hidden 4096, 126464 embedding rows, context 4096" in out
    assert "tokenizer: none" in out
