"""One gRPC channel per replica target, opened on first use, with keepalive (a hung replica's
calls fail over instead of waiting out their deadlines), over mutual TLS when the policy has
`cluster.replica_tls`. Used only on the router's event loop (grpc.aio channels belong to the
loop they were made on)."""

from __future__ import annotations

import asyncio

import grpc

from proto import dilaserve_pb2_grpc as pb_grpc
from proto.keepalive import DEFAULT_KEEPALIVE, Keepalive
from worker.client.connection import ClientTls, open_channel


class Channels:
    def __init__(self, keepalive: Keepalive = DEFAULT_KEEPALIVE,
                 tls: ClientTls | None = None) -> None:
        self.options = keepalive.channel_options()
        self.tls = tls
        self._open: dict[str, tuple[grpc.aio.Channel, pb_grpc.GenerateStub]] = {}

    def stub(self, target: str) -> pb_grpc.GenerateStub:
        entry = self._open.get(target)
        if entry is None:
            channel = open_channel(target, self.tls, self.options, aio=True)
            entry = self._open[target] = (channel, pb_grpc.GenerateStub(channel))
        return entry[1]

    async def close(self, targets) -> None:
        """Close these targets' channels (their calls end with CANCELLED)."""
        closing = [self._open.pop(t)[0] for t in targets if t in self._open]
        await asyncio.gather(*(c.close() for c in closing))

    async def close_all(self) -> None:
        await self.close(list(self._open))
