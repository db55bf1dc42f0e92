# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Multi-rank runs of the stand-in (``mpirun ... trtllm-llmapi-launch trtllm-serve``): a TCP heartbeat between ranks.

The real ranks share the model over NCCL; when one dies, rank 0's collective fails and the server goes down. Here
every worker rank connects to rank 0 (``TRTLLM_STANDIN_RANK0_ADDRESS``, the first host of the OpenMPI hostfile, or
loopback when mpirun put every rank on one node) on
``TRTLLM_STANDIN_HEARTBEAT_PORT`` (29411) and sends a line every 0.5 s. Rank 0 waits until every rank has joined
before it listens for HTTP, and exits (status 1) as soon as one rank stops beating, so it answers only while every
rank is alive.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

from trtllm_standin import env_float, env_int, logs

BEAT_SECONDS = 0.5


def world() -> tuple:
    """(rank, size) from the launcher's environment (0, 1 outside MPI)."""
    rank = env_int("OMPI_COMM_WORLD_RANK", env_int("PMI_RANK", env_int("SLURM_PROCID", 0)))
    size = env_int("OMPI_COMM_WORLD_SIZE", env_int("PMI_SIZE", env_int("SLURM_NTASKS", 1)))
    return rank, max(1, size)


def rank0_address() -> str:
    """Address of rank 0: the first host of the OpenMPI hostfile (mpirun maps rank 0 there)."""
    explicit = os.environ.get("TRTLLM_STANDIN_RANK0_ADDRESS", "").strip()
    if explicit:
        return explicit
    path = os.environ.get("OMPI_MCA_orte_default_hostfile") or os.environ.get("OMPI_MCA_hostfile") or ""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                fields = line.split("#", 1)[0].split()
                if fields:
                    return fields[0]
    except OSError:
        pass
    # No hostfile: when mpirun placed every rank on this node (``mpirun -np N`` inside one container), rank 0 is local.
    size = world()[1]
    if size > 1 and env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 0) == size:
        return "127.0.0.1"
    return ""


def port() -> int:
    return env_int("TRTLLM_STANDIN_HEARTBEAT_PORT", 29411)


class Rendezvous:
    """Rank 0's side: accept the worker ranks, track their beats, exit when one is lost."""

    def __init__(self, size: int):
        self.size = size
        self.last = {}
        self.lock = threading.Lock()
        self.joined = threading.Event()
        self.timeout = env_float("TRTLLM_STANDIN_HEARTBEAT_TIMEOUT", 3.0)
        address = rank0_address() or "0.0.0.0"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((address, port()))
        except OSError:
            self.sock.bind(("0.0.0.0", port()))
        self.sock.listen(64)
        logs.trt("I", f"rank 0: waiting for {size - 1} worker rank(s) on {self.sock.getsockname()[0]}:{port()} (lab stand-in heartbeat)")
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, peer = self.sock.accept()
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _serve(self, conn, peer) -> None:
        rank = None
        with conn, conn.makefile("r", encoding="utf-8") as lines:
            for line in lines:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "rank":
                    rank = int(fields[1])
                    logs.trt("I", f"rank 0: rank {rank} of {self.size} joined from {peer[0]} ({' '.join(fields[2:])})")
                with self.lock:
                    if rank is not None:
                        self.last[rank] = time.monotonic()
                        if len(self.last) >= self.size - 1:
                            self.joined.set()
        if rank is not None:
            with self.lock:
                self.last[rank] = float("-inf")  # connection closed: the rank is gone

    def wait_all(self) -> None:
        self.joined.wait()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(BEAT_SECONDS / 2)
            now = time.monotonic()
            with self.lock:
                lost = sorted(rank for rank, seen in self.last.items() if now - seen > self.timeout)
            if lost:
                logs.trt("E", f"rank 0: lost rank(s) {', '.join(map(str, lost))} (no heartbeat for {self.timeout:.0f}s); "
                              "the tensor-parallel group is broken, exiting (lab stand-in of an NCCL failure)")
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(1)


def worker() -> int:
    """A worker rank: join rank 0 and beat until it goes away (then exit 1, as a real rank would abort)."""
    rank, size = world()
    address = rank0_address()
    if not address:
        print(f"[trtllm-llmapi-launch] rank {rank}: no rank 0 address (hostfile or TRTLLM_STANDIN_RANK0_ADDRESS); idling",
              flush=True)
        while True:
            time.sleep(3600)
    deadline = time.monotonic() + env_float("TRTLLM_STANDIN_JOIN_TIMEOUT", 300.0)
    while True:
        try:
            conn = socket.create_connection((address, port()), timeout=5)
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                print(f"[trtllm-llmapi-launch] rank {rank}: rank 0 at {address}:{port()} unreachable: {exc}", flush=True)
                return 1
            time.sleep(0.5)
    print(f"[trtllm-llmapi-launch] rank {rank} of {size} on {socket.gethostname()}: joined rank 0 at {address}:{port()}",
          flush=True)
    try:
        conn.sendall(f"rank {rank} {socket.gethostname()}\n".encode())
        while True:
            time.sleep(BEAT_SECONDS)
            conn.sendall(b"beat\n")
    except OSError as exc:
        print(f"[trtllm-llmapi-launch] rank {rank}: lost rank 0 ({exc}); exiting", flush=True)
        return 1


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        sys.exit(worker())
    sys.exit(2)
