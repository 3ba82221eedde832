"""The router's OpenAI-compatible HTTP API (aiohttp, on the router's own event loop): completions
and chat completions, streamed as server-sent events (one chunk per committed block), the served
model, health and the router's Prometheus metrics (docs/http.md).

A request becomes one `pb.GenerateRequest` and runs through the gRPC servicer's own `generate`
(checks, routing, shedding, restarts, bookkeeping, metrics): only the transport differs, a `Sink`
here instead of a gRPC context. An error before any output is an HTTP status with OpenAI's error
JSON; one after a stream began is a last `data: {"error": ...}` event, as OpenAI sends it. A
client that disconnects cancels the handler (aiohttp's handler cancellation), and so its call on
the replica.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn

import grpc
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from orchestrator.service.openai_render import Answer, ApiError
from orchestrator.service.openai_schema import (
    COMPLETION_MAX_TOKENS,
    BadBody,
    ChatRequest,
    generate_request,
    http_param,
    parse_body,
)
from orchestrator.service.proxy import Sink
from proto import dilaserve_pb2 as pb
from worker.service.validation import request_id_of

log = logging.getLogger(__name__)
Generate = Callable[[pb.GenerateRequest, Sink], Awaitable[None]]
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}


class CallEnded(Exception):
    """The router ended the call with a status (what `context.abort` does over gRPC)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details

    def error(self) -> ApiError:
        param = None
        if self.code is grpc.StatusCode.INVALID_ARGUMENT and ": " in self.details:
            field, problem = self.details.split(": ", 1)
            param = http_param(field)
            return ApiError.of(self.code, f"{param}: {problem}", param)
        return ApiError.of(self.code, self.details)


class ClientGone(asyncio.CancelledError):
    """The HTTP client went away mid-stream: to the proxy a cancellation (it cancels the call on
    the replica and counts the request cancelled, as for a gRPC client), caught by the handler."""


class _Collect:
    """A non-streamed answer: keeps the final message."""

    def __init__(self) -> None:
        self.final: pb.Final | None = None

    async def write(self, message: pb.GenerateResponse) -> None:
        if message.HasField("final"):
            self.final = message.final

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise CallEnded(code, details)

    def time_remaining(self) -> float | None:
        return None  # HTTP carries no deadline of its own: the SLO deadline is deadline_ms

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        pass  # a 429's retry hint is its Retry-After header (ApiError.headers)


class _Stream:
    """A streamed answer: headers go with the first message, so that an error before it is
    still an HTTP status. After a restart the blocks the client already has are not sent
    again (their text is the first replica's; the final message is the whole answer)."""

    def __init__(self, request: web.Request, answer: Answer, usage: bool) -> None:
        self.request, self.answer, self.usage = request, answer, usage
        self.response = web.StreamResponse(headers=SSE_HEADERS)
        self.blocks = 0  # blocks the client has
        self.block_index = 0  # the next block expected from the replica now serving
        self.final: pb.Final | None = None

    async def write(self, message: pb.GenerateResponse) -> None:
        if message.HasField("restarted"):
            self.block_index = 0
        elif message.HasField("partial"):
            self.block_index = message.partial.block_index + 1
            if self.block_index > self.blocks:
                await self.send(self.answer.chunk(message.partial.text, not self.blocks,
                                                  self.usage))
                self.blocks = self.block_index
        elif message.HasField("final"):
            self.final = message.final
            await self.send(self.answer.finish_chunk(message.final, not self.blocks, self.usage))

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise CallEnded(code, details)

    def time_remaining(self) -> float | None:
        return None

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        pass  # a 429's retry hint is its Retry-After header (ApiError.headers)

    async def send(self, event: dict | str) -> None:
        data = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
        try:
            if not self.response.prepared:
                await self.response.prepare(self.request)
            await self.response.write(f"data: {data}\n\n".encode())
        except ConnectionResetError:
            raise ClientGone() from None

    async def close(self) -> None:
        if self.final is not None and self.usage:
            await self.send(self.answer.usage_chunk(self.final))
        await self.send("[DONE]")
        await self.response.write_eof()


class HttpApi:
    def __init__(self, generate: Generate, models: Callable[[], list[str]],
                 accepting: Callable[[], bool], default_max_tokens: Callable[[], int],
                 registry: CollectorRegistry, on_invalid: Callable[[], None]) -> None:
        self.generate = generate
        self.on_invalid = on_invalid  # counted with the router's malformed gRPC requests
        self.models = models
        self.accepting = accepting
        self.default_max_tokens = default_max_tokens
        self.registry = registry
        self.port = 0
        self._started = int(time.time())
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                    middlewares: list = ()) -> int:
        """Listen (port 0: any free one), over TLS with an `ssl_context`; `middlewares` run
        first (the token check); returns the port."""
        app = web.Application(middlewares=[*middlewares, _errors_as_json])
        app.add_routes([
            web.post("/v1/completions", self._completions),
            web.post("/v1/chat/completions", self._chat),
            web.get("/v1/models", self._list_models),
            web.get("/v1/models/{model}", self._one_model),
            web.get("/health", self._health),
            web.get("/metrics", self._metrics),
        ])
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the bound one, for port 0
        return self.port

    async def stop(self, grace_s: float = 0.0) -> None:
        """Stop listening; requests in flight get grace_s to finish, then are cancelled."""
        if self._runner is not None:
            self._runner._shutdown_timeout = grace_s  # noqa: SLF001 - known only now
            await self._runner.cleanup()
            self._runner = None

    # ---- generation ----------------------------------------------------------------------------

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        try:
            body = parse_body(await _json(request), chat)
            self._check_model(body.model)
            default = self.default_max_tokens() if chat else COMPLETION_MAX_TOKENS
            message = generate_request(body, request.headers, default)
        except BadBody as err:
            self.on_invalid()
            return _error(ApiError(400, str(err), "invalid_request_error", err.param,
                                   "invalid_argument"))
        except _UnknownModel as err:
            self.on_invalid()
            return _error(ApiError(404, str(err), "invalid_request_error", "model",
                                   "model_not_found"))
        # the id the router would assign, chosen here so that every chunk can carry it
        message.request_id = request_id_of("")
        answer = Answer(isinstance(body, ChatRequest), message.request_id, body.model,
                        int(time.time()))
        sink = _Stream(request, answer, body.include_usage) if body.stream else _Collect()
        try:
            await self.generate(message, sink)
        except CallEnded as end:
            if isinstance(sink, _Stream) and sink.response.prepared:
                await _quietly(sink.send(end.error().body()))
                return sink.response
            return _error(end.error())
        except ClientGone:
            return sink.response
        except Exception:  # a bug: said as one, in the API's error format
            log.exception("HTTP request %s failed", message.request_id)
            error = ApiError(500, f"request {message.request_id} failed inside the router "
                             f"(its log has the traceback)", "server_error")
            if isinstance(sink, _Stream) and sink.response.prepared:
                await _quietly(sink.send(error.body()))
                return sink.response
            return _error(error)
        if isinstance(sink, _Stream):
            await _quietly(sink.close())
            return sink.response
        if sink.final is None:  # the proxy ends every call in a final or a status
            return _error(ApiError(500, "the request ended without a result", "server_error"))
        return web.json_response(answer.whole(sink.final))

    def _check_model(self, name: str) -> None:
        served = self.models()
        if served and name not in served:  # before any replica reported, the replicas decide
            raise _UnknownModel(f"model: {name!r} is not served here; served: "
                                f"{', '.join(served)}")

    # ---- the rest ------------------------------------------------------------------------------

    async def _list_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list",
                                  "data": [self._model(name) for name in self.models()]})

    async def _one_model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        try:
            self._check_model(name)
        except _UnknownModel as err:
            return _error(ApiError(404, str(err), "invalid_request_error", "model",
                                   "model_not_found"))
        return web.json_response(self._model(name))

    def _model(self, name: str) -> dict:
        return {"id": name, "object": "model", "created": self._started, "owned_by": "dilaserve"}

    async def _health(self, request: web.Request) -> web.Response:
        """200 while some replica accepts requests, else 503 (as the Generate service's gRPC
        health): a load balancer skips a router that could only turn requests away."""
        if self.accepting():
            return web.json_response({"status": "serving"})
        return web.json_response({"status": "not serving", "reason": "no replica accepts "
                                  "requests"}, status=503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})


class _UnknownModel(ValueError):
    pass


async def _json(request: web.Request) -> object:
    raw = await request.read()
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as err:
        raise BadBody(None, f"the body is not valid JSON: {err}") from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _error(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.status, headers=error.headers())


async def _quietly(sending: Awaitable[None]) -> None:
    """Send the end of a stream to a client that may have gone meanwhile."""
    try:
        await sending
    except (ClientGone, ConnectionResetError):
        pass


@web.middleware
async def _errors_as_json(request: web.Request, handler) -> web.StreamResponse:
    """aiohttp's own refusals (unknown path, wrong method, a body over the size limit) in
    OpenAI's error JSON."""
    try:
        return await handler(request)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        kind = "invalid_request_error" if err.status < 500 else "server_error"
        return _error(ApiError(err.status, f"{request.method} {request.path}: {err.reason}",
                               kind, None, err.reason.lower().replace(" ", "_")))
