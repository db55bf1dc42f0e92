# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Private module utils: a small, cheap HTTP client for probing local OpenAI-compatible servers.

Private to the sparkfleet.trtllm collection (leading underscore): no API promise to other collections.

Why ``http.client`` and not ``open_url`` or an extra library:

* The probe runs on the served host, polls once a second for up to half an hour, and must tell a
  refused connection (the server is still loading), a timeout (the server hangs) and an HTTP status
  apart. ``http.client`` reports each of these as a distinct exception or status.
* ``ansible.module_utils.urls.open_url`` builds a new TLS context, a new opener and installs it
  globally on every call, reads ``~/.netrc`` and honours proxy variables; that costs several
  milliseconds of CPU per poll and a proxy must never sit between a host and its own endpoint.
* The standard library is on every managed host; ``requests``/``httpx`` are not, and the probe must
  not make the Spark install Python packages.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from urllib.parse import urlsplit

__all__ = [
    "BaseURL",
    "HTTPResponse",
    "HTTPTimeout",
    "HTTPUnreachable",
    "parse_base_url",
    "request",
]

_MAX_BODY_BYTES = 4 * 1024 * 1024


class HTTPUnreachable(Exception):
    """Nothing answered: connection refused or reset, unknown host, no route."""


class HTTPTimeout(Exception):
    """The server accepted the connection but did not answer within the timeout."""


class BaseURL:
    """A validated server root URL, split into the parts ``http.client`` needs."""

    __slots__ = ("scheme", "host", "port", "prefix")

    def __init__(self, scheme: str, host: str, port: int, prefix: str) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.prefix = prefix

    def url(self, path: str = "") -> str:
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d%s%s" % (self.scheme, host, self.port, self.prefix, path)

    def __str__(self) -> str:
        return self.url()


def parse_base_url(value: str) -> BaseURL:
    """Validate and split a server root URL such as ``http://127.0.0.1:8355``.

    A trailing ``/v1`` (the form OpenAI clients take as ``base_url``) is accepted and dropped, since
    ``/health`` lives at the server root. Raises ``ValueError`` with a message that says what is wrong.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError("the URL is empty")
    value = value.strip()
    if "://" not in value:
        raise ValueError("it has no scheme; write it as http://HOST:PORT")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError("it cannot be parsed (%s)" % exc) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("the scheme must be http or https, not %r" % parts.scheme)
    if not parts.hostname:
        raise ValueError("it has no host name")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials in the URL are not supported; use the api_key option")
    if parts.query or parts.fragment:
        raise ValueError("it must not carry a query string or fragment")
    if any(c.isspace() for c in value):
        raise ValueError("it contains white space")
    prefix = parts.path.rstrip("/")
    if prefix.endswith("/v1"):
        prefix = prefix[:-3]
    if port is None:
        port = 443 if scheme == "https" else 80
    return BaseURL(scheme, parts.hostname, port, prefix)


class HTTPResponse:
    """Status, body and timing of one answered request."""

    __slots__ = ("status", "body", "elapsed")

    def __init__(self, status: int, body: bytes, elapsed: float) -> None:
        self.status = status
        self.body = body
        self.elapsed = elapsed

    def json(self):
        """Decode the body as JSON; raises ``ValueError`` when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))

    def snippet(self, limit: int = 200) -> str:
        """A short, single-line extract of the body for error messages."""
        text = self.body.decode("utf-8", "replace").strip()
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            err = doc.get("error", doc.get("detail", doc.get("message")))
            if isinstance(err, dict):
                err = err.get("message", err)
            if err is not None:
                text = str(err)
        text = " ".join(text.split())
        return text if len(text) <= limit else text[:limit] + "..."


def open_connection(base: BaseURL, timeout: float, ssl_context: ssl.SSLContext | None = None):
    """An ``http.client`` connection to ``base`` (not yet connected), HTTPS when its scheme says so."""
    if base.scheme == "https":
        return http.client.HTTPSConnection(base.host, base.port, timeout=timeout, context=ssl_context)
    return http.client.HTTPConnection(base.host, base.port, timeout=timeout)


def request(base: BaseURL, method: str, path: str, timeout: float, headers: dict | None = None,
            payload=None, ssl_context: ssl.SSLContext | None = None) -> HTTPResponse:
    """Send one request to ``base`` + ``path`` and return the answer, whatever its status.

    ``payload`` (any JSON-serialisable value) is sent as a JSON body. Raises ``HTTPUnreachable`` when
    nothing answers and ``HTTPTimeout`` when the server does not answer within ``timeout`` seconds
    (connecting, sending and reading the whole body each get that timeout).
    """
    send_headers = {"Accept": "application/json", "Connection": "close"}
    if headers:
        send_headers.update(headers)
    body = None
    if payload is not None:
        body = json.dumps(payload).encode("utf-8")
        send_headers["Content-Type"] = "application/json"
    conn = open_connection(base, timeout, ssl_context)
    start = time.monotonic()
    try:
        conn.request(method, base.prefix + path, body=body, headers=send_headers)
        resp = conn.getresponse()
        data = resp.read(_MAX_BODY_BYTES)
        return HTTPResponse(resp.status, data, time.monotonic() - start)
    except (socket.timeout, TimeoutError):
        raise HTTPTimeout("no answer within %.1f s" % timeout) from None
    except ssl.SSLError as exc:
        raise HTTPUnreachable("TLS error: %s" % exc) from None
    except ConnectionRefusedError:
        raise HTTPUnreachable("connection refused") from None
    except (ConnectionError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise HTTPUnreachable(reason) from None
    finally:
        conn.close()
