"""Bearer tokens at the router: a call without a valid token is refused before any handler runs.

Two tokens (`cluster.router.tokens`): the client token may call Generate and Stats and the HTTP
API; the admin token may call those and Control, which changes the cluster (a replica's
thresholds, draining it). Health stays open, for load balancers, over gRPC and HTTP.

    no token or an unknown one       gRPC UNAUTHENTICATED, HTTP 401 (OpenAI's invalid_api_key)
    the client token on Control      gRPC PERMISSION_DENIED

Tokens are compared in constant time (`hmac.compare_digest`, against both, whatever matches),
kept only as bytes in this object, and never logged: refusals name the call, not what it sent.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

import grpc
from aiohttp import web

from dilaserve.policy.security import Tokens
from orchestrator.service.openai_render import ApiError
from proto.service import SERVICE

log = logging.getLogger(__name__)
CLIENT, ADMIN = "client", "admin"
ADMIN_METHODS = frozenset({f"/{SERVICE}/Control"})
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
OPEN_PATHS = frozenset({"/health"})


class Access:
    """Who a presented `authorization` value is: ADMIN, CLIENT or None."""

    def __init__(self, client_token: str, admin_token: str) -> None:
        if not client_token or not admin_token or client_token == admin_token:
            raise ValueError("the client and admin tokens must be set and differ")
        self._client = client_token.encode()
        self._admin = admin_token.encode()

    @classmethod
    def from_tokens(cls, tokens: Tokens) -> Access:
        """Read where the router runs; a ValueError names the policy field (not the value)."""
        return cls(*tokens.read())

    def role(self, authorization: str | None) -> str | None:
        scheme, _, given = (authorization or "").strip().partition(" ")
        presented = given.strip().encode() if scheme.lower() == "bearer" else b""
        is_admin = hmac.compare_digest(presented, self._admin)
        is_client = hmac.compare_digest(presented, self._client)
        return ADMIN if is_admin else CLIENT if is_client else None

    def refusal(self, method: str, authorization: str | None) -> tuple[grpc.StatusCode, str] | None:
        """None: let the call through; else the status it ends with and why."""
        if method in OPEN_METHODS:
            return None
        role = self.role(authorization)
        if role is None:
            return (grpc.StatusCode.UNAUTHENTICATED,
                    "a valid bearer token is required (metadata `authorization: Bearer TOKEN`)")
        if method in ADMIN_METHODS and role != ADMIN:
            return grpc.StatusCode.PERMISSION_DENIED, f"{method} takes the admin token"
        return None


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """Ends a call that `Access` refuses with its status, whatever the method's kind."""

    def __init__(self, access: Access) -> None:
        self.access = access

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        authorization = next((value for key, value in details.invocation_metadata or ()
                              if key == "authorization"), None)
        refused = self.access.refusal(details.method, authorization)
        handler = await continuation(details)
        if refused is None or handler is None:
            return handler
        log.info("refused %s: %s", details.method, refused[0].name)
        return _ending(handler, *refused)


def _ending(handler: grpc.RpcMethodHandler, code: grpc.StatusCode,
            details: str) -> grpc.RpcMethodHandler:
    async def end(_request, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, details)

    kinds = {"unary_unary": grpc.unary_unary_rpc_method_handler,
             "unary_stream": grpc.unary_stream_rpc_method_handler,
             "stream_unary": grpc.stream_unary_rpc_method_handler,
             "stream_stream": grpc.stream_stream_rpc_method_handler}
    kind = next(name for name in kinds if getattr(handler, name) is not None)
    return kinds[kind](end, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)


def http_middleware(access: Access) -> Callable:
    """The HTTP API's check: every path but /health takes a token (client or admin)."""

    @web.middleware
    async def check(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if request.path in OPEN_PATHS or access.role(request.headers.get("Authorization")):
            return await handler(request)
        log.info("refused HTTP %s %s: no valid token", request.method, request.path)
        error = ApiError(401, "a valid API key is required (header `Authorization: Bearer "
                         "TOKEN`)", "invalid_request_error", None, "invalid_api_key")
        return web.json_response(error.body(), status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="dilaserve"'})

    return check
