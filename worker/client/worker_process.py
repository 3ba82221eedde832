"""A server in a subprocess on 127.0.0.1, for benchmarks: start, read where it listens from its
first line, stop (SIGTERM, then SIGKILL after 30 s). `WorkerProcess` runs `dilaserve worker`;
`dilaserve bench-router` runs the standalone router the same way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

READY_MARK = "dilaserve worker: serving"


class ServerProcess:
    """`with ServerProcess(command, ready_mark, target_of, log) as s: ... s.target ...`:
    `ready_mark` must be in the first line it prints; `target_of(line)` reads its address."""

    def __init__(self, command: list[str], ready_mark: str, target_of: Callable[[str], str],
                 log_path: Path, what: str = "server") -> None:
        self.command = command
        self.ready_mark = ready_mark
        self.target_of = target_of
        self.log_path = log_path
        self.what = what
        self.target = ""
        self.banner = ""
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        self._log = open(self.log_path, "a")  # closed by _stop
        self._proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=self._log, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if self.ready_mark not in line:
            self._stop()
            raise RuntimeError(f"the {self.what} did not start ({line.strip()!r}); see "
                               f"{self.log_path}")
        self.banner = line.strip()
        self.target = self.target_of(line)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout:
            proc.stdout.close()
        self._log.close()
        self._proc = None


class WorkerProcess(ServerProcess):
    """`with WorkerProcess([...worker flags...], log) as w: ... w.target ...`"""

    def __init__(self, flags: list[str], log_path: Path) -> None:
        command = [sys.executable, "-m", "dilaserve.cli.main", "worker", "--port", "0", *flags]
        super().__init__(command, READY_MARK, lambda line: line.split(" on ", 1)[1].split()[0],
                         log_path, "worker")
