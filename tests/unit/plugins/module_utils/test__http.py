# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of plugins/module_utils/_http.py against real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.sparkfleet.trtllm.plugins.module_utils._http import (
    HTTPResponse,
    HTTPTimeout,
    HTTPUnreachable,
    parse_base_url,
    request,
)


@pytest.mark.parametrize("value,url,prefix", [
    ("http://127.0.0.1:8355", "http://127.0.0.1:8355", ""),
    ("http://127.0.0.1:8355/", "http://127.0.0.1:8355", ""),
    ("http://127.0.0.1:8355/v1", "http://127.0.0.1:8355", ""),
    ("http://127.0.0.1:8355/v1/", "http://127.0.0.1:8355", ""),
    ("  HTTP://spark-01:8356  ", "http://spark-01:8356", ""),
    ("https://gw.example.org/llm/v1", "https://gw.example.org:443/llm", "/llm"),
    ("http://spark-01", "http://spark-01:80", ""),
    ("http://[::1]:8355", "http://[::1]:8355", ""),
])
def test_parse_base_url_accepts_and_normalises(value, url, prefix):
    base = parse_base_url(value)
    assert base.url() == url
    assert str(base) == url
    assert base.prefix == prefix
    assert base.url("/health") == url + "/health"


@pytest.mark.parametrize("value,why", [
    ("", "empty"),
    ("127.0.0.1:8355", "no scheme"),
    ("ftp://127.0.0.1:8355", "scheme must be http or https"),
    ("http://", "no host name"),
    ("http://127.0.0.1:99999", "cannot be parsed"),
    ("http://127.0.0.1:port", "cannot be parsed"),
    ("http://a:b@127.0.0.1:8355", "credentials"),
    ("http://127.0.0.1:8355/?q=1", "query string"),
    ("http://127.0.0.1:8355/#top", "fragment"),
    ("http://127.0.0.1:8355/a b", "white space"),
])
def test_parse_base_url_rejects_with_a_reason(value, why):
    with pytest.raises(ValueError, match=why):
        parse_base_url(value)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):
        pass

    def _reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.seen.append((self.command, self.path, dict(self.headers.items()), None))
        if self.path == "/p/health":
            self._reply(200, b"")
        elif self.path == "/slow":
            time.sleep(2)
            self._reply(200, b"late")
        elif self.path == "/drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._reply(404, b'{"detail":"Not Found"}')

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.command, self.path, dict(self.headers.items()), body))
        self._reply(400, json.dumps({"object": "error", "message": "bad model", "code": 400}).encode())


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_request_returns_any_status_with_prefix_and_headers(server):
    base = parse_base_url(server + "/p/v1")
    resp = request(base, "GET", "/health", 5, headers={"Authorization": "Bearer k"})
    assert resp.status == 200 and resp.body == b""
    assert 0 <= resp.elapsed < 5
    method, path, headers, dummy = _Handler.seen[-1]
    assert (method, path) == ("GET", "/p/health")
    assert headers["Authorization"] == "Bearer k"
    missing = request(parse_base_url(server), "GET", "/nothing", 5)
    assert missing.status == 404
    assert missing.snippet() == "Not Found"


def test_request_posts_json_and_reads_openai_error(server):
    resp = request(parse_base_url(server), "POST", "/v1/chat/completions", 5, payload={"model": "m", "max_tokens": 1})
    assert resp.status == 400
    assert resp.json()["message"] == "bad model"
    assert resp.snippet() == "bad model"
    dummy, path, headers, body = _Handler.seen[-1]
    assert path == "/v1/chat/completions"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"model": "m", "max_tokens": 1}


def test_request_timeout_is_bounded(server):
    start = time.monotonic()
    with pytest.raises(HTTPTimeout, match="no answer within 0.3 s"):
        request(parse_base_url(server), "GET", "/slow", 0.3)
    assert time.monotonic() - start < 1.5


def test_request_refused_and_dropped_are_unreachable(server):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HTTPUnreachable, match="connection refused"):
        request(parse_base_url("http://127.0.0.1:%d" % port), "GET", "/health", 2)
    with pytest.raises(HTTPUnreachable):
        request(parse_base_url(server), "GET", "/drop", 2)


def test_unknown_host_is_unreachable():
    with pytest.raises(HTTPUnreachable):
        request(parse_base_url("http://no-such-host.invalid:8355"), "GET", "/health", 2)


@pytest.mark.parametrize("body,expected", [
    (b'{"error": {"message": "Invalid API key", "type": "auth"}}', "Invalid API key"),
    (b'{"detail": "Not Found"}', "Not Found"),
    (b"<html>\n  <b>502</b>\n</html>", "<html> <b>502</b> </html>"),
    (b"x" * 300, "x" * 200 + "..."),
    (b"\xff\xfe bad utf8", "\ufffd\ufffd bad utf8"),
])
def test_snippet_is_short_and_single_line(body, expected):
    assert HTTPResponse(500, body, 0.0).snippet() == expected
