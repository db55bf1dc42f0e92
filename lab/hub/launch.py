# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Start the lab Hub stand-in as a subprocess (for tests and lab scripts).

    from launch import HubProcess
    with HubProcess(data_dir, "--page-size", "2") as hub:
        snapshot_download("openai/gpt-oss-20b", endpoint=hub.url, ...)
        hub.stats(); hub.set_faults(drop_after_bytes=1000); hub.reset_stats()
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "server.py")


class HubProcess:
    def __init__(self, data_dir, *args, host="127.0.0.1", port=0, python=None, start_timeout=60):
        self.cmd = [python or sys.executable, SERVER, "--host", host, "--port", str(port), "--data-dir",
                    str(data_dir)] + [str(a) for a in args]
        self.start_timeout = start_timeout
        self.proc = None
        self.url = None

    def start(self):
        env = dict(os.environ, LAB_HUB_QUIET="1")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        deadline = time.monotonic() + self.start_timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("LAB_HUB_READY "):
                self.url = line.split()[1]
                return self
            if not line and self.proc.poll() is not None:
                break
        err = self.proc.stderr.read() if self.proc.poll() is not None else ""
        self.stop()
        raise RuntimeError("lab hub did not start: %r %s" % (line, err))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def stats(self):
        return self._call("GET", "/_lab/stats")

    def reset_stats(self):
        return self._call("POST", "/_lab/stats/reset", {})

    def set_faults(self, **faults):
        return self._call("POST", "/_lab/faults", faults)

    def clear_faults(self):
        return self._call("DELETE", "/_lab/faults")

    def repos(self):
        return self._call("GET", "/_lab/repos")
