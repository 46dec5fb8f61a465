"""What a process tree listens on, from /proc (Linux): the TCP sockets in LISTEN state of a
process and every descendant, with the process's name, so a test can name any that is not
on loopback."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Listener:
    name: str  # the process's name (/proc/PID/comm)
    pid: int
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        ip = ipaddress.ip_address(self.host)
        mapped = getattr(ip, "ipv4_mapped", None)
        return (mapped or ip).is_loopback

    def __str__(self) -> str:
        ip = ipaddress.ip_address(self.host)
        mapped = getattr(ip, "ipv4_mapped", None)
        host = f"[::ffff:{mapped}]" if mapped else f"[{ip}]" if ip.version == 6 else str(ip)
        return f"{self.name}[{self.pid}] {host}:{self.port}"


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        stat = _read(f"/proc/{pid}/stat")
        if stat:
            ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(pid)
    tree = [root]
    for pid in tree:
        tree.extend(children.get(pid, []))
    return tree


def listeners(root: int) -> list[Listener]:
    """The listening TCP sockets of ``root``'s process tree."""
    table = _listening_table()
    found = []
    for pid in descendants(root):
        name = _read(f"/proc/{pid}/comm").strip() or "?"
        for inode in _socket_inodes(pid):
            if inode in table:
                found.append(Listener(name, pid, *table[inode]))
    return sorted(found, key=lambda item: (item.name, item.port))


def environ(pid: int) -> dict[str, str]:
    """A process's environment as it started (readable for this user's processes)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _listening_table() -> dict[str, tuple[str, int]]:
    """socket inode -> (host, port) of every TCP socket in LISTEN state."""
    table = {}
    for family in ("tcp", "tcp6"):
        lines = _read(f"/proc/net/{family}").splitlines()[1:]
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A":  # 0A: LISTEN
                addr, port = fields[1].split(":")
                table[fields[9]] = (_host(addr), int(port, 16))
    return table


def _host(hexaddr: str) -> str:
    """/proc/net's address: 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hexaddr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def _pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""
