"""The OpenAI-compatible request bodies (pydantic, at the boundary) and the one message each
becomes: a `pb.GenerateRequest`, the same a gRPC client sends, so that the router checks, routes
and counts both alike (docs/http.md).

dilaserve's own fields ride along as documented extensions: `slo_class`, `deadline_ms` and
`min_threshold` in the body, or the headers below for clients that cannot add fields (a body
field wins over its header). OpenAI fields dilaserve does not implement are refused naming the
field, unless they carry the value that asks nothing (n=1, top_p=1, stop=[] ...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from proto import dilaserve_pb2 as pb

SLO_CLASS_HEADER = "X-Dilaserve-SLO-Class"
DEADLINE_HEADER = "X-Dilaserve-Deadline-Ms"
COMPLETION_MAX_TOKENS = 16  # OpenAI's own default for /v1/completions
INT64 = 2**63

# accepted only at these values (None, or absent, always): each asks nothing of the server
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,), "best_of": (1,), "echo": (False,), "logprobs": (False,), "top_logprobs": (0,),
    "top_p": (1,), "presence_penalty": (0,), "frequency_penalty": (0,), "logit_bias": ({},),
    "stop": ([], ""), "suffix": ("",), "tools": ([],), "tool_choice": ("none",),
    "functions": ([],), "function_call": ("none",), "parallel_tool_calls": (True, False),
    "response_format": ({"type": "text"},), "modalities": (["text"],), "store": (False,),
}


class BadBody(ValueError):
    """A body the API refuses (-> 400), naming the field as the client wrote it."""

    def __init__(self, param: str | None, problem: str) -> None:
        super().__init__(f"{param}: {problem}" if param else problem)
        self.param = param


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StreamOptions(_Body):
    include_usage: bool = False


class _Request(_Body):
    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=-INT64, lt=INT64)
    temperature: float | None = None  # unset: 0, greedy (dilaserve's default, not OpenAI's 1)
    seed: int | None = Field(None, ge=0, lt=2**64)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None  # an end-user id, as OpenAI takes it; not used
    # dilaserve's extension fields
    slo_class: str | None = None
    deadline_ms: float | None = None
    min_threshold: float | None = None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def max_new_tokens(self, default: int) -> int:
        return default if self.max_tokens is None else self.max_tokens


class CompletionRequest(_Request):
    prompt: str | list[int]

    @field_validator("prompt", mode="before")
    @classmethod
    def _one_prompt(cls, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            if len(value) > 1:
                raise ValueError(f"one prompt per request, got a batch of {len(value)}")
            return value[0]
        if isinstance(value, list) and not all(_is_token(v) for v in value):
            raise ValueError("a string, a list of one string, or a list of token ids")
        return value


class ChatMessage(_Body):
    role: str
    content: str

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts(cls, value: Any) -> Any:
        """Content as a string, or as a list of text parts (joined); no other part types."""
        if not isinstance(value, list):
            return value
        texts = []
        for i, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text" or set(part) != {
                    "type", "text"} or not isinstance(part["text"], str):
                raise ValueError(f"part {i}: only text parts ({{type: text, text: ...}}) are "
                                 f"supported")
            texts.append(part["text"])
        return "".join(texts)


class ChatRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=-INT64, lt=INT64)

    def max_new_tokens(self, default: int) -> int:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens
        return super().max_new_tokens(default)


def parse_body(data: object, chat: bool) -> CompletionRequest | ChatRequest:
    """The JSON body as one request; raises BadBody naming the first field at fault."""
    if not isinstance(data, dict):
        raise BadBody(None, "the body must be a JSON object")
    for name, neutral in NEUTRAL.items():
        value = data.get(name)
        if value is not None and not any(_same(value, v) for v in neutral):
            raise BadBody(name, f"not supported by dilaserve (got {value!r}; accepted: "
                                f"{' or '.join(repr(v) for v in neutral)})")
    fields = {k: v for k, v in data.items() if k not in NEUTRAL}
    try:
        return (ChatRequest if chat else CompletionRequest).model_validate(fields)
    except ValidationError as err:
        first = err.errors()[0]
        param = _path(first["loc"])
        problem = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            problem = "not a field of this endpoint (docs/http.md lists them)"
        raise BadBody(param or None, problem) from None


def generate_request(body: CompletionRequest | ChatRequest, headers: Mapping[str, str],
                     default_max_tokens: int) -> pb.GenerateRequest:
    """The gRPC request the router runs; its own checks (the worker's) follow in `prepare`."""
    message = pb.GenerateRequest(max_new_tokens=body.max_new_tokens(default_max_tokens),
                                 temperature=body.temperature or 0.0, seed=body.seed or 0)
    if isinstance(body, ChatRequest):
        message.messages.extend(pb.ChatMessage(role=m.role, content=m.content)
                                for m in body.messages)
    elif isinstance(body.prompt, str):
        message.prompt_text = body.prompt
    else:
        message.prompt_ids.extend(body.prompt)
    slo_class = body.slo_class if body.slo_class is not None else headers.get(SLO_CLASS_HEADER)
    if slo_class:
        message.slo_class = slo_class
    deadline_ms = body.deadline_ms
    if deadline_ms is None and DEADLINE_HEADER in headers:
        deadline_ms = _header_number(headers[DEADLINE_HEADER], DEADLINE_HEADER)
    if deadline_ms is not None:
        message.deadline_ms = deadline_ms
    if body.min_threshold is not None:
        message.quality.min_threshold = body.min_threshold
    return message


# the shared checks name the gRPC request's fields; a client of this API wrote these
_PARAMS = (("max_new_tokens", "max_tokens"), ("prompt_text", "prompt"), ("prompt_ids", "prompt"),
           ("quality.min_threshold", "min_threshold"))


def http_param(field: str) -> str:
    for grpc_name, http_name in _PARAMS:
        if field == grpc_name or field.startswith((grpc_name + "[", grpc_name + ".")):
            return http_name + field[len(grpc_name):]
    return field


def _header_number(text: str, header: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadBody(header, f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise BadBody(header, f"must be finite, got {text!r}")
    return value


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < INT64


def _same(value: object, neutral: object) -> bool:
    """Equal, without True == 1 or False == 0 (logprobs=0 asks for something)."""
    if isinstance(value, bool) or isinstance(neutral, bool):
        return value is neutral
    if isinstance(neutral, int):  # 1 or 1.0
        return isinstance(value, int | float) and value == neutral
    return type(value) is type(neutral) and value == neutral


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
