"""Hot reload: changes are found by stat + content hash, read once settled, reported once; a bad
file keeps the running policy; restart-only settings keep their running values and say so.

Real files in tmp_path; time is a fake clock, and each write sets a distinct mtime, so nothing
sleeps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dilaserve.policy.changes import Change, policy_changes
from dilaserve.policy.cluster_loader import parse_cluster_policy
from dilaserve.policy.watcher import PolicyWatcher

POLICY = """default_class: chat
classes:
  - name: chat
    deadline: {ms: 100}
  - name: batch
    best_effort: true
cluster:
  router: {port: 50051}
  reconfigure: {period_s: 10}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class PolicyFile:
    """Writes give the file a new mtime each (1 s apart), as a person's saves would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mtime_ns = 1_000_000_000_000_000_000

    def write(self, text: str) -> None:
        self.path.write_text(text)
        self.touch()

    def touch(self) -> None:
        self.mtime_ns += 1_000_000_000
        os.utime(self.path, ns=(self.mtime_ns, self.mtime_ns))


@pytest.fixture
def setup(tmp_path):
    f = PolicyFile(tmp_path / "policy.yaml")
    f.write(POLICY)
    clock = Clock()
    watcher = PolicyWatcher(f.path, clock=clock, settle_s=0.5)
    watcher.load()
    return f, clock, watcher


def settled_poll(watcher: PolicyWatcher, clock: Clock):
    """The first poll sees the new stat, the one after settle_s reads it."""
    assert watcher.poll() is None
    clock.now += 0.6
    return watcher.poll()


def test_unchanged_file_gives_nothing(setup):
    _, clock, watcher = setup
    for _ in range(3):
        clock.now += 1
        assert watcher.poll() is None


def test_a_touch_or_a_save_without_edits_is_no_change(setup):
    f, clock, watcher = setup
    f.touch()
    assert settled_poll(watcher, clock) is None
    f.write(POLICY)
    assert settled_poll(watcher, clock) is None


def test_a_live_change_is_applied_and_reported_once(setup):
    f, clock, watcher = setup
    f.write(POLICY.replace("ms: 100", "ms: 80").replace("period_s: 10", "period_s: 5"))
    result = settled_poll(watcher, clock)
    assert result.ok and result.error is None and result.at_s == clock.now
    assert [str(c) for c in result.applied] == [
        "classes[chat].deadline.ms: 100.0 -> 80.0",
        "cluster.reconfigure.period_s: 10.0 -> 5.0",
    ]
    assert result.restart_needed == ()
    assert result.policy.policy.slo_class("chat").deadline_ms == 80
    assert result.policy.cluster.reconfigure.period_s == 5
    assert watcher.running is result.policy
    clock.now += 5
    assert watcher.poll() is None


def test_a_change_is_not_read_before_it_settles(setup):
    f, clock, watcher = setup
    f.write(POLICY.replace("ms: 100", "ms: 80"))
    assert watcher.poll() is None
    clock.now += 0.3
    f.write(POLICY.replace("ms: 100", "ms: 70"))  # the editor is still writing
    assert watcher.poll() is None
    clock.now += 0.3  # 0.6 s after the first write, 0.3 s after the last: not settled
    assert watcher.poll() is None
    clock.now += 0.3
    result = watcher.poll()
    assert result.policy.policy.slo_class("chat").deadline_ms == 70


def test_a_bad_file_is_reported_once_and_the_old_policy_stays(setup):
    f, clock, watcher = setup
    running = watcher.running
    f.write(POLICY.replace("ms: 100", "ms: -1"))
    result = settled_poll(watcher, clock)
    assert not result.ok and result.policy is None
    assert "policy.yaml:4: classes[0](chat).deadline.ms" in result.error
    assert "rejected; the running policy stays" in result.message()
    assert watcher.running is running
    for _ in range(3):
        clock.now += 1
        assert watcher.poll() is None  # not again on every poll
    f.write(POLICY.replace("ms: 100", "ms: -2"))  # another bad edit: reported again
    assert not settled_poll(watcher, clock).ok
    f.write(POLICY)  # back to what runs: accepted, nothing to apply
    result = settled_poll(watcher, clock)
    assert result.ok and result.changes == ()
    assert "no live setting changed" in result.message()


def test_restart_only_settings_keep_their_running_values(setup):
    f, clock, watcher = setup
    f.write(POLICY.replace("port: 50051", "port: 6000"))
    result = settled_poll(watcher, clock)
    assert result.ok
    assert [str(c) for c in result.restart_needed] == ["cluster.router.port: 50051 -> 6000"]
    assert result.applied == ()
    assert result.policy.cluster.router_port == 50051  # what runs
    assert result.as_written.cluster.router_port == 6000  # what the file says
    assert "after a restart of `dilaserve serve` only: cluster.router.port" in result.message()
    # a later live edit is applied, and the port still waits for the restart
    f.write(POLICY.replace("port: 50051", "port: 6000").replace("ms: 100", "ms: 90"))
    result = settled_poll(watcher, clock)
    assert [c.path for c in result.applied] == ["classes[chat].deadline.ms"]
    assert [c.path for c in result.restart_needed] == ["cluster.router.port"]
    assert result.policy.cluster.router_port == 50051


def test_worker_settings_wait_for_a_restart(setup):
    f, clock, watcher = setup
    f.write(POLICY + "worker:\n  block_size: 16\n")
    result = settled_poll(watcher, clock)
    assert [c.path for c in result.restart_needed] == ["worker.block_size"]
    assert result.policy.policy.worker.block_size == 32


def test_a_deleted_file_is_reported_once(setup):
    f, clock, watcher = setup
    f.path.unlink()
    result = settled_poll(watcher, clock)
    assert not result.ok and "gone" in result.error
    clock.now += 1
    assert watcher.poll() is None
    f.write(POLICY.replace("ms: 100", "ms: 60"))
    assert settled_poll(watcher, clock).policy.policy.slo_class("chat").deadline_ms == 60


def test_a_poll_before_load_reads_at_once(tmp_path):
    f = PolicyFile(tmp_path / "p.yaml")
    f.write(POLICY)
    watcher = PolicyWatcher(f.path, clock=Clock())
    first = watcher.poll()
    assert first.ok and first.changes == () and watcher.running is first.policy
    assert watcher.poll() is None


def test_load_raises_on_a_bad_file(tmp_path):
    f = PolicyFile(tmp_path / "p.yaml")
    f.write("default_class: x\n")
    with pytest.raises(ValueError, match="p.yaml: classes: Field required"):
        PolicyWatcher(f.path, clock=Clock()).load()


def test_the_injected_stat_and_loader_are_used(tmp_path):
    """Same mtime and size from stat: the content is not even looked at."""
    f = PolicyFile(tmp_path / "p.yaml")
    f.write(POLICY)
    stamp = os.stat(f.path)
    loads = []

    def loader(path):
        loads.append(path)
        return parse_cluster_policy(path.read_text(), str(path))

    watcher = PolicyWatcher(f.path, clock=Clock(), loader=loader, stat=lambda p: stamp)
    watcher.load()
    f.path.write_text(POLICY.replace("ms: 100", "ms: 200"))  # same size, stat says unchanged
    assert watcher.poll() is None and len(loads) == 1


def test_classes_added_or_removed_are_one_change_each():
    old = parse_cluster_policy(POLICY)
    new = parse_cluster_policy(
        POLICY.replace("  - name: batch\n    best_effort: true\n",
                       "  - name: bulk\n    best_effort: true\n    priority: 3\n")
    )
    changes = policy_changes(old, new)
    assert [str(c) for c in changes] == ["classes[batch]: removed", "classes[bulk]: added"]
    assert all(c.live for c in changes)


@pytest.mark.parametrize(
    ("path", "live"),
    [
        ("classes[a].deadline.ms", True),
        ("default_class", True),
        ("cluster.thresholds", True),
        ("cluster.max_tp", True),
        ("cluster.reconfigure.drift", True),
        ("cluster.model", False),
        ("cluster.router.port", False),
        ("cluster.metrics_port", False),
        ("cluster.nodes", False),
        ("worker.scheduler.ordering", False),
    ],
)
def test_which_settings_apply_live(path, live):
    assert Change(path, 1, 2).live is live


def test_command_line_overrides_are_not_reported_as_changes_of_the_file(setup):
    """`serve --port 0` runs the file with the router's port overridden: a reload that edits a
    deadline reports the deadline, not `cluster.router.port 50051 -> 0` (or back), and the
    override stays in what runs."""
    import dataclasses

    f, clock, watcher = setup
    running = watcher.running
    watcher.running = dataclasses.replace(
        running, cluster=dataclasses.replace(running.cluster, router_port=0))
    f.write(POLICY.replace("ms: 100", "ms: 80"))
    result = settled_poll(watcher, clock)
    assert [str(c) for c in result.changes] == ["classes[chat].deadline.ms: 100.0 -> 80.0"]
    assert result.policy.cluster.router_port == 0
    f.write(POLICY.replace("ms: 100", "ms: 80").replace("port: 50051", "port: 50052"))
    result = settled_poll(watcher, clock)
    assert [str(c) for c in result.restart_needed] == ["cluster.router.port: 50051 -> 50052"]
