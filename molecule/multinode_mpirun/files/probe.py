# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reachability probe of the verify step (runs on the controller and on the lab hosts, standard library only).

    probe.py tcp TARGET PORT [SOURCE]   prints open, timeout (dropped), refused, or error <reason>
    probe.py icmp TARGET                prints reply or timeout (one ICMP echo, so the path itself is known to work)

SOURCE binds the TCP client to one of the host's addresses (a second address outside the peer set).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import sys
import time

TIMEOUT = 6.0


def tcp(target: str, port: int, source: str | None) -> str:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        if source:
            sock.bind((source, 0))
        sock.connect((target, port))
        return "open"
    except socket.timeout:
        return "timeout"
    except OSError as exc:
        return "refused" if exc.errno == errno.ECONNREFUSED else "error %s" % exc
    finally:
        sock.close()


def _checksum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp(target: str) -> str:
    ident = os.getpid() & 0xFFFF
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    payload = b"sparkfleet-verify"
    packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, 1) + payload
    try:  # unprivileged ICMP socket where ping_group_range allows it, else a raw socket (root)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        raw = False
    except OSError:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        raw = True
    sock.settimeout(1.0)
    deadline = time.monotonic() + TIMEOUT
    try:
        sock.sendto(packet, (target, 0))
        while time.monotonic() < deadline:
            try:
                data, addr = sock.recvfrom(2048)
            except socket.timeout:
                continue
            if raw:
                data = data[(data[0] & 0x0F) * 4:]  # strip the IP header
            if addr[0] == target and data[:1] == b"\0":  # echo reply
                return "reply"
        return "timeout"
    finally:
        sock.close()


def main(argv: list[str]) -> int:
    if argv[:1] == ["tcp"] and len(argv) in (3, 4):
        print(tcp(argv[1], int(argv[2]), argv[3] if len(argv) == 4 else None))
    elif argv[:1] == ["icmp"] and len(argv) == 2:
        print(icmp(argv[1]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
