"""Hot reload of a cluster policy file: poll it, re-read it when it changed, report a change once.

    watcher = PolicyWatcher(path)
    running = watcher.load()       # at start: a bad file raises ValueError (the command exits 2)
    # then about once a second:
    result = watcher.poll()
    if result is None: ...         # unchanged
    elif result.ok: running = result.policy   # log result.message(); restart_needed waits
    else: ...                      # log result.error; the running policy stays

Change detection: every poll stats the file (mtime_ns, size); when that moved, a hash of the
content decides whether it changed (a `touch`, or a save without edits, is no change). A changed
file is read once its stat has stayed the same for `settle_s` on the injected clock, so an editor
that writes in several steps is not read half way; poll more often than `settle_s` to reload
within two polls. A bad or missing file is reported once per change; the next report comes when
the file changes again.

Which settings apply live and which wait for a restart: `dilaserve.policy.changes`. A result's
`policy` is what to run from now on: the file's live settings with the running restart-only ones;
`restart_needed` lists the restart-only settings that differ from what runs (again on every reload
until the restart).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dilaserve.policy.changes import Change, live_policy, policy_changes
from dilaserve.policy.cluster import ClusterPolicy
from dilaserve.policy.cluster_loader import load_cluster_policy

SETTLE_S = 0.5
_MISSING = (-1, -1)  # the stamp of a file that is not there
_MISSING_DIGEST = "missing"
_UNREADABLE = "cannot read the policy file: "

Stamp = tuple[int, int]  # (mtime_ns, size)


@dataclass(frozen=True)
class ReloadResult:
    source: str
    at_s: float  # the watcher's clock when the change was read
    policy: ClusterPolicy | None  # what to run from now on; None: the file was rejected
    error: str | None = None  # why it was rejected (file, line and field, one line per problem)
    changes: tuple[Change, ...] = ()  # the file against what runs, live and restart-only
    as_written: ClusterPolicy | None = None  # the file's policy, restart-only fields included

    @property
    def ok(self) -> bool:
        return self.policy is not None

    @property
    def applied(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.live)

    @property
    def restart_needed(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if not c.live)

    def message(self) -> str:
        if not self.ok:
            return f"policy {self.source} rejected; the running policy stays:\n{self.error}"
        applied = "; ".join(map(str, self.applied)) or "no live setting changed"
        text = f"policy {self.source} reloaded: {applied}"
        if self.restart_needed:
            waiting = "; ".join(map(str, self.restart_needed))
            text += f" (after a restart of `dilaserve serve` only: {waiting})"
        return text


class PolicyWatcher:
    def __init__(
        self,
        path: Path | str,
        clock: Callable[[], float] = time.monotonic,
        loader: Callable[[Path], ClusterPolicy] = load_cluster_policy,
        stat: Callable[[Path], os.stat_result] = os.stat,
        settle_s: float = SETTLE_S,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.loader = loader
        self.stat = stat
        self.settle_s = settle_s
        self.running: ClusterPolicy | None = None
        # `running` as the file alone would have it: the command line may override some of the
        # file's settings (`serve --port 0`), and those are not changes of the file
        self._from_file: ClusterPolicy | None = None
        self._seen: Stamp | None = None  # the stat last observed
        self._seen_at = 0.0  # since when
        self._pending = False  # the stat moved and the content has not been read since
        self._digest: str | None = None  # of the content last read, good or bad

    def load(self) -> ClusterPolicy:
        """Read the file now (at start); raises FileNotFoundError or ValueError on a bad file."""
        stamp = self._stamp()
        digest = self._content_digest()
        policy = self.loader(self.path)
        self._seen, self._seen_at, self._pending = stamp, self.clock(), False
        self._digest, self.running, self._from_file = digest, policy, policy
        return policy

    def poll(self) -> ReloadResult | None:
        """None when nothing changed since the last report; else the new policy or the error."""
        now = self.clock()
        stamp = self._stamp()
        if stamp != self._seen:
            self._seen, self._seen_at, self._pending = stamp, now, True
            if self.running is not None and self.settle_s > 0:
                return None
        elif not self._pending or now - self._seen_at < self.settle_s:
            return None
        self._pending = False
        digest = self._content_digest()
        if digest == self._digest:
            return None
        self._digest = digest
        return self._read(now)

    def _read(self, now: float) -> ReloadResult:
        source = str(self.path)
        if self._digest == _MISSING_DIGEST:
            return ReloadResult(source, now, None, f"{source}: the policy file is gone")
        if self._digest.startswith(_UNREADABLE):
            return ReloadResult(source, now, None, f"{source}: {self._digest}")
        try:
            written = self.loader(self.path)
        except (ValueError, OSError) as err:
            return ReloadResult(source, now, None, str(err))
        if self.running is None:
            self.running = self._from_file = written
            return ReloadResult(source, now, written, as_written=written)
        changes = policy_changes(self._from_file or self.running, written)
        self._from_file = live_policy(self._from_file or self.running, written)
        self.running = live_policy(self.running, written)
        return ReloadResult(source, now, self.running, changes=changes, as_written=written)

    def _stamp(self) -> Stamp:
        try:
            st = self.stat(self.path)
        except OSError:  # gone or unreadable: the content read says which
            return _MISSING
        return (st.st_mtime_ns, st.st_size)

    def _content_digest(self) -> str:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except FileNotFoundError:
            return _MISSING_DIGEST
        except OSError as err:  # e.g. permissions: reported like a bad file
            return f"{_UNREADABLE}{err.strerror or err}"
