"""`dilaserve serve --http-port` end to end in its own process: the embedded default (local Ray,
CPU replicas of the shipped model, the router) answers the official `openai` client."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import openai
import pytest

from dilaserve.core.locations import SHIPPED_MODEL_DIR
from worker.models.tokenizer import load_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

READY = re.compile(r"OpenAI-compatible HTTP API on (http://\S+)$")
PROMPT = "sort:3141>"


def test_serve_answers_the_openai_client_and_stops():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dilaserve.cli.main", "serve", "--port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        url = _wait_for_url(proc, errors)
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)
        _check(client)
    finally:
        proc.send_signal(signal.SIGINT)  # as Ctrl-C: serve stops the cluster, Ray included
        proc.wait(timeout=120)
        reader.join(10)
    assert proc.returncode == 0, "".join(errors)[-3000:]
    assert "dilaserve serve: stopped" in "".join(errors)


def _wait_for_url(proc: subprocess.Popen, errors: list[str]) -> str:
    for line in proc.stdout:  # serve prints the URL once its replicas serve
        found = READY.search(line.strip())
        if found:
            return found.group(1)
    raise AssertionError(f"serve ended without an HTTP API: {''.join(errors)[-3000:]}")


def _check(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == [SHIPPED_MODEL_DIR.name]
    whole = client.completions.create(model=SHIPPED_MODEL_DIR.name, prompt=PROMPT, max_tokens=8)
    text = whole.choices[0].text
    assert sorted(text) == list(text) and len(text) == 4, text  # its digits, sorted
    assert whole.usage.prompt_tokens == len(load_tokenizer(SHIPPED_MODEL_DIR).encode(PROMPT))
    assert whole.usage.completion_tokens == len(text)  # the char model: a token a character
    chunks = list(client.completions.create(model=SHIPPED_MODEL_DIR.name, prompt=PROMPT,
                                            max_tokens=8, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == text  # greedy: the same
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump()
    with pytest.raises(openai.BadRequestError) as err:  # the shipped model has no chat template
        client.chat.completions.create(model=SHIPPED_MODEL_DIR.name, max_tokens=8,
                                       messages=[{"role": "user", "content": "hi"}])
    assert err.value.param == "messages" and "no chat template" in err.value.message
