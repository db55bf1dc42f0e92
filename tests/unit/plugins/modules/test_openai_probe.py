# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of sparkfleet.trtllm.openai_probe.

The module's main() runs against real HTTP servers on 127.0.0.1: a small threaded stdlib server in this
file whose behaviour each test sets (late listen, wrong model, hanging generation, malformed JSON, header
capture), and the lab's trtllm-serve stand-in when its source is in the checkout. The container watch is
tested with a fake ``docker`` command on PATH and, when a Docker engine answers, with a real container.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.sparkfleet.trtllm.plugins.modules import openai_probe

MODEL = "sparkfleet-test/tiny-llm"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeOpenAI:
    """A threaded OpenAI-compatible server whose behaviour the test sets."""

    def __init__(self, models=(MODEL,), listen_after=0.0, health_status=200, hang_generation=False,
                 models_body=None, generation_status=200):
        self.models = list(models)
        self.listen_after = listen_after
        self.health_status = health_status
        self.hang_generation = hang_generation
        self.models_body = models_body
        self.generation_status = generation_status
        self.port = free_port()
        self.requests = []
        self.listening_at = None
        self._stop = threading.Event()
        self._server = None
        self._timer = None

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, status, doc=None, raw=None):
                body = raw if raw is not None else json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self, body=None):
                fake.requests.append({"method": self.command, "path": self.path,
                                      "headers": dict(self.headers.items()), "body": body})

            def do_GET(self):
                self._record()
                if self.path == "/health":
                    self._send(fake.health_status, {"status": "ok" if fake.health_status == 200 else "unhealthy"})
                elif self.path == "/v1/models":
                    if fake.models_body is not None:
                        self._send(200, raw=fake.models_body)
                    else:
                        self._send(200, {"object": "list", "data": [
                            {"id": m, "object": "model", "created": 0, "owned_by": "tensorrt_llm"}
                            for m in fake.models]})
                else:
                    self._send(404, {"detail": "Not Found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                self._record(body)
                if self.path not in ("/v1/chat/completions", "/v1/completions"):
                    self._send(404, {"detail": "Not Found"})
                    return
                if fake.hang_generation:
                    fake._stop.wait(30)
                    return
                if fake.generation_status != 200:
                    self._send(fake.generation_status, {"object": "error", "message": "engine error",
                                                        "type": "InternalServerError", "code": 500})
                    return
                if self.path == "/v1/chat/completions":
                    choice = {"index": 0, "message": {"role": "assistant", "content": "Hello"},
                              "finish_reason": "length"}
                else:
                    choice = {"index": 0, "text": "Hello", "finish_reason": "length"}
                self._send(200, {"id": "cmpl-1", "object": "chat.completion", "model": body.get("model"),
                                 "choices": [choice], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})

        return Handler

    def _listen(self):
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self._server = server
        self.listening_at = time.monotonic()
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def start(self):
        if self.listen_after:
            self._timer = threading.Timer(self.listen_after, self._listen)
            self._timer.start()
        else:
            self._listen()
        return self

    def stop(self):
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join(5)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def paths(self, method=None):
        return [r["path"] for r in self.requests if method is None or r["method"] == method]


@pytest.fixture
def fake_server():
    servers = []

    def make(**kwargs):
        server = FakeOpenAI(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def run_probe(capsys, **args):
    """Run the module's main() with these arguments; return (exit code, result dict, wall seconds)."""
    start = time.monotonic()
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            openai_probe.main()
    wall = time.monotonic() - start
    out = capsys.readouterr().out
    return exc.value.code, json.loads(out), wall


# --- stages and timings ---------------------------------------------------------------------------------


def test_refused_then_serving_reports_each_stage_with_timings(capsys, fake_server):
    server = fake_server(listen_after=1.0)
    rc, res, wall = run_probe(capsys, base_url=server.url, model=MODEL, poll_interval_seconds=0.1,
                              timeout_seconds=15)
    assert rc == 0, res
    assert res["stage"] == "serving"
    assert res["changed"] is False
    assert res["models"] == [MODEL]
    assert res["model"] == MODEL
    assert res["url"] == server.url
    # Nothing listened for the first second: several refused polls came first.
    assert res["attempts"] >= 5
    assert 0.9 <= res["seconds_to_live"] <= res["seconds_to_ready"] <= res["seconds_to_serving"] < 5
    assert 0 < res["latency_ms"] < 2000
    assert res["last_error"] is None
    assert wall < 5
    # Readiness was noticed promptly: the first successful poll came within the poll interval (+ slack).
    first = server.requests[0]
    assert first["path"] == "/health"
    assert server.paths() == ["/health", "/v1/models", "/v1/chat/completions"]
    gen = server.requests[-1]["body"]
    assert gen["max_tokens"] == 1
    assert gen["model"] == MODEL
    assert gen["messages"][0]["role"] == "user"


def test_readiness_noticed_within_one_poll_interval(capsys, fake_server):
    server = fake_server(listen_after=0.7)
    start = time.monotonic()
    rc, res, dummy = run_probe(capsys, base_url=server.url + "/v1", poll_interval_seconds=0.25, timeout_seconds=10)
    assert rc == 0, res
    lag = (start + res["seconds_to_serving"]) - server.listening_at
    assert 0 <= lag < 0.5


def test_completion_request_kind_posts_a_prompt(capsys, fake_server):
    server = fake_server()
    rc, res, dummy = run_probe(capsys, base_url=server.url, model=MODEL, request_kind="completion", timeout_seconds=5)
    assert rc == 0, res
    post = [r for r in server.requests if r["method"] == "POST"]
    assert [r["path"] for r in post] == ["/v1/completions"]
    assert post[0]["body"]["max_tokens"] == 1
    assert "prompt" in post[0]["body"] and "messages" not in post[0]["body"]


def test_stage_live_stops_after_health(capsys, fake_server):
    server = fake_server()
    rc, res, dummy = run_probe(capsys, base_url=server.url, stage="live", timeout_seconds=5)
    assert rc == 0, res
    assert res["stage"] == "live"
    assert res["seconds_to_ready"] is None and res["latency_ms"] is None
    assert server.paths() == ["/health"]


def test_stage_ready_without_model_takes_first_listed(capsys, fake_server):
    server = fake_server(models=["a/first", "b/second"])
    rc, res, dummy = run_probe(capsys, base_url=server.url, stage="ready", timeout_seconds=5)
    assert rc == 0, res
    assert res["stage"] == "ready"
    assert res["models"] == ["a/first", "b/second"]
    assert res["model"] == "a/first"
    assert "POST" not in [r["method"] for r in server.requests]


# --- failures ------------------------------------------------------------------------------------------


def test_wrong_model_fails_at_live_with_model_list(capsys, fake_server):
    server = fake_server(models=["other/model-a", "other/model-b"])
    rc, res, wall = run_probe(capsys, base_url=server.url, model=MODEL, timeout_seconds=30)
    assert rc == 1
    assert res["failed"] is True
    assert res["stage"] == "live"
    assert "'other/model-a', 'other/model-b'" in res["msg"]
    assert MODEL in res["msg"]
    assert res["models"] == ["other/model-a", "other/model-b"]
    assert wall < 5  # failed at once, not after the 30 s timeout
    assert "POST" not in [r["method"] for r in server.requests]


def test_generation_hang_fails_after_serving_attempts(capsys, fake_server):
    server = fake_server(hang_generation=True)
    rc, res, wall = run_probe(capsys, base_url=server.url, model=MODEL, request_timeout_seconds=0.5,
                              serving_attempts=2, poll_interval_seconds=0.1, timeout_seconds=60)
    assert rc == 1
    assert res["stage"] == "ready"
    assert "health 200 and model listed, but generation timed out" in res["msg"]
    assert "2 attempt(s) in a row" in res["msg"]
    assert res["seconds_to_ready"] is not None and res["seconds_to_serving"] is None
    assert 1.0 <= wall < 5
    assert server.paths("POST") == ["/v1/chat/completions"] * 2


def test_generation_hang_with_unlimited_attempts_stops_at_timeout(capsys, fake_server):
    server = fake_server(hang_generation=True)
    rc, res, wall = run_probe(capsys, base_url=server.url, model=MODEL, request_timeout_seconds=0.4,
                              serving_attempts=0, poll_interval_seconds=0.1, timeout_seconds=1.5)
    assert rc == 1
    assert res["msg"].startswith("timed out after 1.5 s")
    assert "highest stage reached: 'ready'" in res["msg"]
    assert "generation timed out" in res["last_error"]
    assert 1.5 <= wall < 3


def test_generation_server_error_counts_as_failed_attempt(capsys, fake_server):
    server = fake_server(generation_status=500)
    rc, res, wall = run_probe(capsys, base_url=server.url, model=MODEL, serving_attempts=3,
                              poll_interval_seconds=0.05, timeout_seconds=30)
    assert rc == 1
    assert "HTTP 500: engine error" in res["msg"]
    assert len(server.paths("POST")) == 3
    assert wall < 5


def test_timeout_when_nothing_listens(capsys):
    port = free_port()
    rc, res, wall = run_probe(capsys, base_url="http://127.0.0.1:%d" % port, poll_interval_seconds=0.2,
                              timeout_seconds=1.0)
    assert rc == 1
    assert res["stage"] == "unreachable"
    assert "connection refused" in res["msg"]
    assert res["seconds_to_live"] is None
    assert 5 <= res["attempts"] <= 8
    assert 1.0 <= wall < 2.0


def test_health_unhealthy_keeps_waiting_then_times_out(capsys, fake_server):
    server = fake_server(health_status=503)
    rc, res, wall = run_probe(capsys, base_url=server.url, poll_interval_seconds=0.2, timeout_seconds=0.8)
    assert rc == 1
    assert "GET /health answered HTTP 503" in res["msg"]
    assert res["attempts"] >= 3
    assert wall < 2


def test_client_error_fails_at_once_with_api_key_hint(capsys, fake_server):
    server = fake_server(health_status=401)
    rc, res, wall = run_probe(capsys, base_url=server.url, timeout_seconds=30)
    assert rc == 1
    assert "HTTP 401 (check api_key)" in res["msg"]
    assert wall < 3


def test_malformed_model_list_is_a_clear_error(capsys, fake_server):
    server = fake_server(models_body=b"<html>not json</html>")
    rc, res, wall = run_probe(capsys, base_url=server.url, timeout_seconds=30)
    assert rc == 1
    assert "did not answer an OpenAI model list" in res["msg"]
    assert "<html>not json</html>" in res["msg"]
    assert wall < 3


def test_api_key_is_sent_on_every_request_and_never_returned(capsys, fake_server):
    server = fake_server()
    secret = "sk-sparkfleet-test-0123456789"
    rc, res, dummy = run_probe(capsys, base_url=server.url, model=MODEL, api_key=secret, timeout_seconds=5)
    assert rc == 0, res
    assert len(server.requests) == 3
    assert all(r["headers"].get("Authorization") == "Bearer " + secret for r in server.requests)
    assert secret not in json.dumps(res)
    # The prompt is not echoed back either.
    assert "messages" not in json.dumps(res)


@pytest.mark.parametrize("url", [
    "127.0.0.1:8355",
    "ftp://127.0.0.1:8355",
    "http://",
    "http://127.0.0.1:99999",
    "http://127.0.0.1:8355/?x=1",
    "http://user:pw@127.0.0.1:8355",
    "",
])
def test_malformed_base_url_is_a_clear_error(capsys, url):
    rc, res, wall = run_probe(capsys, base_url=url)
    assert rc == 1
    assert "is not a usable server URL" in res["msg"]
    assert "http://127.0.0.1:8355" in res["msg"]
    assert wall < 1


@pytest.mark.parametrize("opt,value", [("timeout_seconds", 0), ("poll_interval_seconds", -1),
                                       ("serving_attempts", -1)])
def test_bad_numbers_are_rejected(capsys, opt, value):
    rc, res, dummy = run_probe(capsys, base_url="http://127.0.0.1:1", **{opt: value})
    assert rc == 1
    assert opt in res["msg"]


# --- container watch through a fake docker command line --------------------------------------------------

FAKE_DOCKER = textwrap.dedent("""\
    #!/bin/sh
    # Fake docker CLI: answers inspect/logs from files in $FAKE_DOCKER_DIR, logs each call.
    echo "$*" >> "$FAKE_DOCKER_DIR/calls"
    case "$1" in
      inspect)
        name=$4
        if [ -f "$FAKE_DOCKER_DIR/$name.json" ]; then cat "$FAKE_DOCKER_DIR/$name.json"; exit 0; fi
        echo "[]"; echo "Error: No such container: $name" >&2; exit 1 ;;
      logs)
        cat "$FAKE_DOCKER_DIR/stdout.log"; cat "$FAKE_DOCKER_DIR/stderr.log" >&2; exit 0 ;;
    esac
    exit 2
""")


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker"
    script.write_text(FAKE_DOCKER)
    script.chmod(0o755)
    state = tmp_path / "docker"
    state.mkdir()
    (state / "stdout.log").write_text(
        "2026-01-01T00:00:01.000000000Z Loading model weights\n"
        "2026-01-01T00:00:03.000000000Z Loading layer 12/32\n")
    (state / "stderr.log").write_text(
        "2026-01-01T00:00:02.000000000Z [TensorRT-LLM][WARNING] low memory\n"
        "2026-01-01T00:00:04.000000000Z torch.OutOfMemoryError: CUDA out of memory\n")
    monkeypatch.setenv("FAKE_DOCKER_DIR", str(state))
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ.get("PATH", "")))
    monkeypatch.setattr(openai_probe, "HAS_DOCKER_SDK", False)

    def set_state(name, status, exit_code=0, restart_count=0, oom=False):
        doc = [{"Name": "/" + name, "RestartCount": restart_count,
                "State": {"Status": status, "Running": status == "running", "Restarting": status == "restarting",
                          "OOMKilled": oom, "ExitCode": exit_code, "Error": ""}}]
        (state / (name + ".json")).write_text(json.dumps(doc))

    set_state.dir = state
    return set_state


def test_exited_container_fails_fast_with_exit_code_and_merged_log_tail(capsys, fake_docker):
    fake_docker("trtllm-llm", "exited", exit_code=137, oom=True)
    port = free_port()
    rc, res, wall = run_probe(capsys, base_url="http://127.0.0.1:%d" % port, container="trtllm-llm",
                              container_log_lines=10, timeout_seconds=30)
    assert rc == 1
    assert wall < 3
    assert res["attempts"] == 1
    assert "container 'trtllm-llm' is exited (exit code 137, killed for lack of memory (OOM))" in res["msg"]
    assert "CUDA out of memory" in res["msg"]
    assert res["container"] == {"name": "trtllm-llm", "status": "exited", "exit_code": 137, "oom_killed": True,
                                "restart_count": 0}
    # stdout and stderr lines interleaved again in time order, timestamps stripped.
    assert res["container_logs"] == ["Loading model weights", "[TensorRT-LLM][WARNING] low memory",
                                     "Loading layer 12/32", "torch.OutOfMemoryError: CUDA out of memory"]
    calls = (fake_docker.dir / "calls").read_text().splitlines()
    assert calls == ["inspect --type container trtllm-llm", "logs --timestamps --tail 10 trtllm-llm"]


def test_container_restarted_during_probe_fails(capsys, fake_docker):
    fake_docker("trtllm-llm", "running", restart_count=2)
    port = free_port()

    def crash_later():
        time.sleep(0.6)
        fake_docker("trtllm-llm", "running", exit_code=1, restart_count=3)

    thread = threading.Thread(target=crash_later)
    thread.start()
    rc, res, wall = run_probe(capsys, base_url="http://127.0.0.1:%d" % port, container="trtllm-llm",
                              poll_interval_seconds=0.1, timeout_seconds=30)
    thread.join()
    assert rc == 1
    assert "was restarted 1 time(s) by its restart policy" in res["msg"]
    assert "running again; Docker keeps no exit code of the crashed run" in res["msg"]
    assert res["attempts"] >= 3
    assert wall < 5


def test_restarting_container_fails(capsys, fake_docker):
    fake_docker("trtllm-llm", "restarting", exit_code=2, restart_count=5)
    rc, res, dummy = run_probe(capsys, base_url="http://127.0.0.1:%d" % free_port(), container="trtllm-llm",
                               timeout_seconds=30)
    assert rc == 1
    assert "is restarting (crash loop)" in res["msg"]


def test_missing_container_fails(capsys, fake_docker):
    rc, res, dummy = run_probe(capsys, base_url="http://127.0.0.1:%d" % free_port(), container="nope",
                               timeout_seconds=30)
    assert rc == 1
    assert "container 'nope' does not exist" in res["msg"]
    assert res["container"]["status"] == "missing"


def test_running_container_and_server_reach_serving(capsys, fake_docker, fake_server):
    fake_docker("trtllm-llm", "running")
    server = fake_server(listen_after=0.5)
    rc, res, dummy = run_probe(capsys, base_url=server.url, model=MODEL, container="trtllm-llm",
                               poll_interval_seconds=0.1, timeout_seconds=10)
    assert rc == 0, res
    assert res["container"]["status"] == "running"
    calls = (fake_docker.dir / "calls").read_text().splitlines()
    assert len(calls) == res["attempts"]  # inspected once per poll, never asked for logs
    assert all(c.startswith("inspect") for c in calls)


def test_container_without_docker_cli_is_a_clear_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(openai_probe, "HAS_DOCKER_SDK", False)
    monkeypatch.setattr(openai_probe.AnsibleModule, "get_bin_path", lambda self, *a, **k: None)
    rc, res, dummy = run_probe(capsys, base_url="http://127.0.0.1:1", container="x", timeout_seconds=5)
    assert rc == 1
    assert "needs the docker command line or the Docker SDK" in res["msg"]


# --- container watch through the Docker SDK, against the real engine ----------------------------------------

TEST_IMAGE = "sparkfleet-probe-test/dash:latest"


def _docker_ok() -> bool:
    if not openai_probe.HAS_DOCKER_SDK or shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0


@pytest.fixture(scope="module")
def dash_image(tmp_path_factory):
    """A tiny local image (dash, sleep and libc copied from this host), built with docker import."""
    if not _docker_ok():
        pytest.skip("no Docker engine or Docker SDK here")
    root = tmp_path_factory.mktemp("rootfs")
    bins = ["/bin/dash", "/bin/sleep"]
    libs = subprocess.run(["ldd"] + bins, capture_output=True, text=True, check=True).stdout
    files = bins + sorted({tok for tok in libs.split() if tok.startswith("/") and not tok.endswith(":")})
    for src in files:
        dst = root / src.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(src), dst)
    (root / "bin" / "sh").symlink_to("dash")
    tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True).stdout
    subprocess.run(["docker", "import", "-", TEST_IMAGE], input=tar, capture_output=True, check=True)
    yield TEST_IMAGE
    subprocess.run(["docker", "rmi", "-f", TEST_IMAGE], capture_output=True, check=False)


def test_real_container_exit_is_seen_through_the_docker_sdk(capsys, dash_image):
    name = "sparkfleet-probe-test-exit-%d" % os.getpid()
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    try:
        subprocess.run(["docker", "run", "-d", "--name", name, dash_image, "/bin/sh", "-c",
                        # stdout and stderr are separate streams with no order between them: pause in between
                        "echo loading weights; sleep 0.3; echo 'fatal: engine build failed' >&2; sleep 1; exit 3"],
                       capture_output=True, check=True)
        rc, res, wall = run_probe(capsys, base_url="http://127.0.0.1:%d" % free_port(), container=name,
                                  poll_interval_seconds=0.2, timeout_seconds=30)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    assert rc == 1
    assert res["attempts"] >= 2  # it was running (and refusing) first, then it exited
    assert wall < 10
    assert "container '%s' is exited (exit code 3)" % name in res["msg"]
    assert res["container_logs"] == ["loading weights", "fatal: engine build failed"]
    assert res["container"]["exit_code"] == 3


# --- against the lab's trtllm-serve stand-in ----------------------------------------------------------------

STANDIN = (Path(__file__).resolve().parents[4] / "lab" / "images" / "trtllm-standin" / "overlay" / "usr" / "local"
           / "bin" / "trtllm-serve")
STANDIN_COMMIT = "0123456789abcdef0123456789abcdef01234567"

# A fake docker command line that reports the state of the stand-in process: running until the wrapper
# shell writes the exit code into $STANDIN_RC, then exited with that code; logs are the captured output.
PROCESS_DOCKER = textwrap.dedent("""\
    #!/bin/sh
    case "$1" in
      inspect)
        if [ -s "$STANDIN_RC" ]; then status=exited; running=false; code=$(cat "$STANDIN_RC")
        else status=running; running=true; code=0; fi
        printf '[{"Name": "/%s", "RestartCount": 0, "State": {"Status": "%s", "Running": %s, "Restarting": false, ' \\
          "$4" "$status" "$running"
        printf '"OOMKilled": false, "ExitCode": %s, "Error": ""}}]\\n' "$code"
        exit 0 ;;
      logs)
        tail -n "$4" "$STANDIN_LOG" | sed 's/^/2026-01-01T00:00:00.000000000Z /'
        exit 0 ;;
    esac
    exit 2
""")


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """Start the stand-in trtllm-serve (a real process on 127.0.0.1) with a fake Hub cache holding MODEL."""
    if not STANDIN.is_file():
        pytest.skip("the trtllm-serve stand-in is not in this checkout")
    cache = tmp_path / "hub"
    repo = cache / ("models--" + MODEL.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(STANDIN_COMMIT)
    snapshot = repo / "snapshots" / STANDIN_COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"],
                                                      "max_position_embeddings": 4096}))
    procs = []

    def start(load_seconds=1.0, **env_extra):
        port = free_port()
        log = tmp_path / "standin.log"
        rc_file = tmp_path / "standin.rc"
        env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
                   TRTLLM_STANDIN_LOAD_SECONDS=str(load_seconds), STANDIN_RC=str(rc_file))
        env.update({"TRTLLM_STANDIN_" + k.upper(): str(v) for k, v in env_extra.items()})
        cmd = ["sh", "-c", '"$@"; echo $? > "$STANDIN_RC"', "sh", sys.executable, str(STANDIN), MODEL,
               "--host", "127.0.0.1", "--port", str(port)]
        with open(log, "wb") as handle:
            proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env,  # pylint: disable=consider-using-with
                                    start_new_session=True)
        procs.append(proc)
        bindir = tmp_path / "bin"
        bindir.mkdir(exist_ok=True)
        (bindir / "docker").write_text(PROCESS_DOCKER)
        (bindir / "docker").chmod(0o755)
        monkeypatch.setenv("STANDIN_RC", str(rc_file))
        monkeypatch.setenv("STANDIN_LOG", str(log))
        monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ.get("PATH", "")))
        monkeypatch.setattr(openai_probe, "HAS_DOCKER_SDK", False)
        return {"url": "http://127.0.0.1:%d" % port, "proc": proc, "log": log, "rc": rc_file}

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(10)


def test_standin_refused_while_loading_then_serving(capsys, standin):
    srv = standin(load_seconds=1.5)
    rc, res, wall = run_probe(capsys, base_url=srv["url"], model=MODEL, container="trtllm-llm",
                              poll_interval_seconds=0.2, timeout_seconds=30)
    assert rc == 0, res
    assert res["stage"] == "serving"
    assert res["models"] == [MODEL]
    assert res["container"]["status"] == "running"
    # The stand-in does not listen while it "loads": the first polls were refused.
    assert res["seconds_to_live"] >= 1.2
    assert res["seconds_to_live"] <= res["seconds_to_ready"] <= res["seconds_to_serving"]
    assert res["attempts"] >= 6
    assert 0 < res["latency_ms"] < 5000
    assert wall < 15
    log = srv["log"].read_text()
    assert "Uvicorn running on http://127.0.0.1" in log


def test_standin_wrong_model_fails_at_live(capsys, standin):
    srv = standin(load_seconds=0.2)
    rc, res, wall = run_probe(capsys, base_url=srv["url"], model="meta-llama/Llama-3.1-8B-Instruct",
                              poll_interval_seconds=0.2, timeout_seconds=30)
    assert rc == 1
    assert res["stage"] == "live"
    assert "serves %r, not the expected model 'meta-llama/Llama-3.1-8B-Instruct'" % MODEL in res["msg"]
    assert wall < 15


def test_standin_hanging_generation_is_not_serving(capsys, standin):
    srv = standin(load_seconds=0.2, hang_generation=1)
    rc, res, wall = run_probe(capsys, base_url=srv["url"], model=MODEL, request_timeout_seconds=0.5,
                              serving_attempts=2, poll_interval_seconds=0.2, timeout_seconds=60)
    assert rc == 1
    assert res["stage"] == "ready"
    assert res["seconds_to_live"] is not None
    assert "health 200 and model listed, but generation timed out" in res["msg"]
    assert wall < 20
    assert srv["proc"].poll() is None  # the server itself is still up: only generation hangs


def test_standin_crash_while_loading_fails_fast_with_log_tail(capsys, standin):
    srv = standin(load_seconds=1.0, crash_while_loading=1)
    rc, res, wall = run_probe(capsys, base_url=srv["url"], model=MODEL, container="trtllm-llm",
                              poll_interval_seconds=0.2, timeout_seconds=120)
    assert rc == 1
    assert wall < 15  # not the 120 s timeout
    assert res["stage"] == "unreachable"
    assert res["container"]["status"] == "exited"
    assert res["container"]["exit_code"] == 1
    assert "container 'trtllm-llm' is exited (exit code 1)" in res["msg"]
    assert "CUDA out of memory" in res["msg"]
    assert any("torch.OutOfMemoryError" in line for line in res["container_logs"])


def test_standin_crash_after_request_is_caught_by_next_probe(capsys, standin):
    srv = standin(load_seconds=0.2, crash_after_requests=1)
    rc, res, dummy = run_probe(capsys, base_url=srv["url"], model=MODEL, container="trtllm-llm",
                               poll_interval_seconds=0.2, timeout_seconds=30)
    assert rc == 0, res  # the first 1-token request is answered, then the executor dies
    srv["proc"].wait(10)
    rc, res, wall = run_probe(capsys, base_url=srv["url"], model=MODEL, container="trtllm-llm",
                              poll_interval_seconds=0.2, timeout_seconds=60)
    assert rc == 1
    assert wall < 5
    assert "exit code 1" in res["msg"]
    assert any("Executor worker died" in line for line in res["container_logs"])
