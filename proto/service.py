"""Registering the Generate service so that bytes that are not a valid request get
INVALID_ARGUMENT, naming the field where it can (a string field that is not UTF-8), as the API
promises: gRPC's own deserialization failure would answer a bare INTERNAL or UNKNOWN.

Both the worker and the router register their servicers through `add_generate_service`; the
router counts such requests among its invalid ones (`on_undecodable`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError

from proto import dilaserve_pb2 as pb

SERVICE = "dilaserve.v1.Generate"


@dataclass(frozen=True)
class Undecodable:
    """A request whose bytes did not parse, and why."""

    reason: str


def _decoder(message_class) -> Callable[[bytes], Any]:
    def decode(data: bytes):
        try:
            return message_class.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as err:
            where = invalid_utf8_field(data, message_class.DESCRIPTOR)
            if where is not None:
                return Undecodable(f"{where}: not valid UTF-8")
            return Undecodable(f"the request is not a valid {message_class.DESCRIPTOR.name} "
                               f"({err})")
    return decode


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def invalid_utf8_field(data: bytes, descriptor: Descriptor, prefix: str = "") -> str | None:
    """The path (e.g. `messages[1].content`) of the first string field whose bytes are not
    UTF-8, reading the wire format; None if there is none or the bytes are broken otherwise."""
    seen: dict[int, int] = {}
    i = 0
    try:
        while i < len(data):
            key, i = _varint(data, i)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, i = _varint(data, i)
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                size, i = _varint(data, i)
                chunk, i = data[i:i + size], i + size
                field = descriptor.fields_by_number.get(number)
                if field is None:
                    continue
                index = seen.get(number, 0)
                seen[number] = index + 1
                name = prefix + field.name + (
                    f"[{index}]" if field.is_repeated else "")
                if field.type == FieldDescriptor.TYPE_STRING:
                    try:
                        chunk.decode("utf-8")
                    except UnicodeDecodeError:
                        return name
                elif field.type == FieldDescriptor.TYPE_MESSAGE:
                    inner = invalid_utf8_field(chunk, field.message_type, name + ".")
                    if inner is not None:
                        return inner
            else:
                return None
    except ValueError:
        return None
    return None


def _unary_stream(method, on_undecodable: Callable[[], None]):
    if inspect.isasyncgenfunction(method):  # the worker's: yields its responses
        async def streaming(request, context):
            if isinstance(request, Undecodable):
                on_undecodable()
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
            async for response in method(request, context):
                yield response
        return streaming

    async def writing(request, context):  # the router's: writes them with context.write
        if isinstance(request, Undecodable):
            on_undecodable()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        await method(request, context)
    return writing


def _unary_unary(method):
    async def handler(request, context):
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        return await method(request, context)
    return handler


def add_generate_service(servicer, server: grpc.aio.Server,
                         on_undecodable: Callable[[], None] = lambda: None) -> None:
    """`on_undecodable`: called for each Generate request whose bytes do not parse (it is
    answered INVALID_ARGUMENT)."""
    handlers = {
        "Generate": grpc.unary_stream_rpc_method_handler(
            _unary_stream(servicer.Generate, on_undecodable),
            request_deserializer=_decoder(pb.GenerateRequest),
            response_serializer=pb.GenerateResponse.SerializeToString),
        "Stats": grpc.unary_unary_rpc_method_handler(
            _unary_unary(servicer.Stats),
            request_deserializer=_decoder(pb.StatsRequest),
            response_serializer=pb.StatsReply.SerializeToString),
        "Control": grpc.unary_unary_rpc_method_handler(
            _unary_unary(servicer.Control),
            request_deserializer=_decoder(pb.ControlRequest),
            response_serializer=pb.ControlReply.SerializeToString),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
