"""The listening sockets of a process tree, read from /proc (what `ss -ltnup` shows, per process).

A TCP socket in LISTEN, or a UDP socket bound and not connected, counts as listening; each is
tied to its process through the inode in /proc/PID/fd."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

TCP_LISTEN = "0A"


@dataclass(frozen=True)
class Listening:
    pid: int
    name: str  # the process's name, as ps shows it
    protocol: str  # tcp, tcp6, udp, udp6
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int

    @property
    def loopback(self) -> bool:
        a = self.address
        if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
            a = a.ipv4_mapped
        return a.is_loopback

    def __str__(self) -> str:
        return f"{self.name}[{self.pid}] {self.protocol} {self.address}:{self.port}"


def descendants(root: int) -> set[int]:
    """`root` and every process under it, as the process table is now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def listening(pids: set[int]) -> list[Listening]:
    owners: dict[int, int] = {}  # socket inode -> pid
    for pid in pids:
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    owners[int(target[8:-1])] = pid
        except OSError:
            continue
    out = []
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        rows = Path(f"/proc/net/{protocol}").read_text().splitlines()[1:]
        for row in rows:
            fields = row.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            if inode not in owners:
                continue
            bound = state == TCP_LISTEN if protocol.startswith("tcp") else \
                _port(remote) == 0  # UDP: bound, no peer
            if bound:
                pid = owners[inode]
                out.append(Listening(pid, _name(pid), protocol, _address(local), _port(local)))
    return out


def _port(hex_address: str) -> int:
    return int(hex_address.rsplit(":", 1)[1], 16)


def _address(hex_address: str):
    raw = bytes.fromhex(hex_address.rsplit(":", 1)[0])
    # the kernel writes each 32-bit word in host (little-endian) order
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"
