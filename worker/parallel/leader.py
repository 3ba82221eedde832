"""Rank 0's command channel to its followers, with a heartbeat while it is idle.

Every command goes out under one lock, so the serving loop's steps and the heartbeat thread's pings
reach the followers whole and in order. A follower waits on the control group with a timeout; the
heartbeat (sent only after `heartbeat_s` without any command) keeps an idle replica from looking
dead, and a rank 0 that really is gone stops the pings, so its followers time out and exit.
"""

from __future__ import annotations

import sys
import threading
import time

import torch.distributed as dist

from worker.parallel.commands import Command, Ping, Stop
from worker.parallel.group import TpGroup


class Leader:
    def __init__(self, group: TpGroup, heartbeat_s: float = 2.0) -> None:
        if group.rank != 0:
            raise ValueError(f"tp: only rank 0 leads, this is rank {group.rank}")
        if heartbeat_s <= 0:
            raise ValueError(f"tp: heartbeat_s must be positive, got {heartbeat_s}")
        self.group = group
        self.heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._last_sent = time.monotonic()
        self._closed = False
        self._quit = threading.Event()
        self._heartbeat = threading.Thread(
            target=self._beat, name="dilaserve-tp-heartbeat", daemon=True
        )
        self._heartbeat.start()

    def send(self, command: Command) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("tensor-parallel replica is stopped; no follower is listening")
            dist.broadcast_object_list([command], src=0, group=self.group.control)
            self._last_sent = time.monotonic()

    def _beat(self) -> None:
        while not self._quit.wait(self.heartbeat_s / 4):
            if time.monotonic() - self._last_sent < self.heartbeat_s:
                continue
            try:
                self.send(Ping())
            except Exception as err:  # a follower is gone; the next step will fail and say so
                if not self._closed:
                    print(f"dilaserve tp rank 0: heartbeat failed: {err}", file=sys.stderr)
                return

    def stop(self, join_timeout_s: float = 10.0) -> None:
        """Tell the followers to leave; idempotent. Errors (followers already gone) are ignored."""
        self._quit.set()
        with self._lock:
            if self._closed:
                return
            try:
                dist.broadcast_object_list([Stop()], src=0, group=self.group.control)
            except Exception as err:
                print(f"dilaserve tp rank 0: could not send stop: {err}", file=sys.stderr)
            self._closed = True
        self._heartbeat.join(join_timeout_s)
