#!/usr/bin/python
# Copyright: Contributors to the sparkfleet.trtllm project
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: openai_probe
short_description: Wait until an OpenAI-compatible server answers, and report how long each stage took
version_added: 0.1.0
author:
  - sparkfleet contributors (!UNKNOWN)
description:
  - Polls an OpenAI-compatible HTTP server such as C(trtllm-serve) until it reaches the stage set by O(stage),
    and returns the stage reached, the seconds it took to reach each stage, the model list and a latency sample.
  - The stages, in order, are V(unreachable) (nothing answers; C(trtllm-serve) does not listen while it loads a model),
    V(live) (C(GET /health) answers 200), V(ready) (C(GET /v1/models) lists O(model)) and V(serving)
    (a chat or completion request with C(max_tokens=1) answers within O(request_timeout_seconds)).
  - Only V(serving) proves that the engine generates; C(/health) can stay 200 while generation hangs.
  - When O(container) is set, the container's state is read on every poll, so that a container that exited, died,
    is restarting or was restarted fails the probe at once, with its exit code and the last lines of its log,
    instead of waiting out O(timeout_seconds).
  - Fails at once, without waiting, when the server lists models but not O(model), when it answers with a client
    error (4xx, for example a wrong O(api_key)), and when O(serving_attempts) 1-token requests in a row failed.
  - The module only reads. It never logs the prompt or the API key.
  - It speaks HTTP with the Python standard library only (C(http.client)), so that no Python package has to be
    installed on the served host, each poll costs little CPU, refused connections and timeouts are told apart,
    and no proxy from the environment sits between the host and its own endpoint.
extends_documentation_fragment:
  - sparkfleet.trtllm._attributes
  - sparkfleet.trtllm._attributes.actiongroup_trtllm
  - sparkfleet.trtllm._attributes.info_module
  - sparkfleet.trtllm._attributes.idempotent_not_modify_state
options:
  base_url:
    description:
      - Root URL of the server, for example V(http://127.0.0.1:8355).
      - A trailing V(/v1), the form OpenAI clients take, is accepted and dropped; C(/health) lives at the root.
      - A path prefix before it is kept, for a server behind a reverse proxy.
    type: str
    required: true
  model:
    description:
      - Model id that C(GET /v1/models) must list (for C(trtllm-serve), the Hugging Face id it was started with,
        or the directory name for a local path).
      - When omitted, any listed model makes the server V(ready) and the first one is used for the 1-token request.
    type: str
  stage:
    description:
      - Stage to wait for.
    type: str
    choices: [live, ready, serving]
    default: serving
  timeout_seconds:
    description:
      - Overall time to wait for O(stage), from the first poll. Large models take 20 to 30 minutes to load.
    type: float
    default: 1800
  poll_interval_seconds:
    description:
      - Pause between two polls.
    type: float
    default: 1.0
  request_timeout_seconds:
    description:
      - Time one HTTP request may take, including the 1-token generation request.
    type: float
    default: 30
  serving_attempts:
    description:
      - How many 1-token requests in a row may time out or fail with a server error, while the model is listed,
        before the probe fails. V(0) keeps trying until O(timeout_seconds).
    type: int
    default: 3
  request_kind:
    description:
      - Request used to prove V(serving) - V(chat) posts to C(/v1/chat/completions), V(completion) to C(/v1/completions)
        (use it for base models without a chat template).
    type: str
    choices: [chat, completion]
    default: chat
  api_key:
    description:
      - API key sent as a bearer token (C(Authorization) header) on every request, for servers behind an
        authenticating proxy. C(trtllm-serve) itself has no authentication.
    type: str
  validate_certs:
    description:
      - Verify the server certificate when O(base_url) is https.
    type: bool
    default: true
  container:
    description:
      - Name or id of the Docker container that runs the server, on the host the module runs on.
      - Read on every poll with the Docker SDK for Python when it is installed, else with the C(docker) command line.
    type: str
  container_log_lines:
    description:
      - How many of the container's last log lines to return when it failed.
    type: int
    default: 30
notes:
  - Connections go straight to O(base_url); proxy environment variables are ignored.
requirements:
  - The C(docker) command line or the Docker SDK for Python, only when O(container) is set.
seealso:
  - name: trtllm-serve
    description: The OpenAI-compatible server of TensorRT-LLM.
    link: https://nvidia.github.io/TensorRT-LLM/commands/trtllm-serve/trtllm-serve.html
"""

EXAMPLES = r"""
- name: Wait until the LLM endpoint answers a chat completion
  sparkfleet.trtllm.openai_probe:
    base_url: http://127.0.0.1:8355
    model: openai/gpt-oss-20b
    container: trtllm-llm
  register: llm_probe

- name: Show how long the model took to load
  ansible.builtin.debug:
    msg: "ready after {{ llm_probe.seconds_to_ready }} s, first token in {{ llm_probe.latency_ms }} ms"

- name: Only check that the server is listening, without generating
  sparkfleet.trtllm.openai_probe:
    base_url: http://127.0.0.1:8356/v1
    stage: live
    timeout_seconds: 10
"""

RETURN = r"""
stage:
  description: Stage of the last poll; equal to O(stage) on success.
  returned: always
  type: str
  sample: serving
url:
  description: Server root URL probed, normalised.
  returned: always
  type: str
  sample: http://127.0.0.1:8355
model:
  description: Model id the 1-token request used.
  returned: when the server listed a model
  type: str
  sample: openai/gpt-oss-20b
models:
  description: Model ids listed by C(GET /v1/models) at the last poll that read them.
  returned: always
  type: list
  elements: str
  sample: [openai/gpt-oss-20b]
seconds_to_live:
  description: Seconds from the first poll until C(/health) first answered 200; V(null) when not reached.
  returned: always
  type: float
  sample: 312.4
seconds_to_ready:
  description: Seconds from the first poll until C(/v1/models) first listed the model; V(null) when not reached.
  returned: always
  type: float
  sample: 312.5
seconds_to_serving:
  description: Seconds from the first poll until the first 1-token request answered; V(null) when not reached.
  returned: always
  type: float
  sample: 313.1
latency_ms:
  description: Duration of the successful 1-token request, in milliseconds; V(null) when not reached.
  returned: always
  type: float
  sample: 84.2
attempts:
  description: Number of polls made.
  returned: always
  type: int
  sample: 313
elapsed_seconds:
  description: Seconds the probe ran.
  returned: always
  type: float
  sample: 313.1
last_error:
  description: Why the last poll did not reach O(stage); V(null) when it did.
  returned: always
  type: str
  sample: "GET /health: connection refused"
container:
  description: State of O(container) at the last poll.
  returned: when O(container) is set
  type: dict
  contains:
    name:
      description: Container name.
      type: str
      sample: trtllm-llm
    status:
      description: Docker status (V(created), V(running), V(restarting), V(exited), V(dead), ...).
      type: str
      sample: running
    exit_code:
      description: Exit code of the last run.
      type: int
      sample: 0
    oom_killed:
      description: Whether the kernel killed the container for lack of memory.
      type: bool
      sample: false
    restart_count:
      description: Restarts Docker made by restart policy since the container was created.
      type: int
      sample: 0
container_logs:
  description: Last O(container_log_lines) lines of the container log, when the container failed.
  returned: when the container failed
  type: list
  elements: str
  sample: ["[TensorRT-LLM][ERROR] CUDA out of memory"]
"""

import json
import ssl
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.sparkfleet.trtllm.plugins.module_utils._http import (
    HTTPTimeout,
    HTTPUnreachable,
    parse_base_url,
    request,
)

try:
    import docker as docker_sdk
    from docker.errors import DockerException, NotFound
    HAS_DOCKER_SDK = True
    DOCKER_SDK_IMPORT_ERROR = None
except ImportError:  # the docker command line is used instead
    HAS_DOCKER_SDK = False
    DOCKER_SDK_IMPORT_ERROR = traceback.format_exc()

STAGES = ("unreachable", "live", "ready", "serving")
PROMPT = "Hi"


class ProbeFailed(Exception):
    """The probe cannot succeed any more: stop at once with this message."""

    def __init__(self, msg: str, **extra) -> None:
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


def _round(value):
    return None if value is None else round(value, 3)


class ContainerWatch:
    """Reads the state of one container, through the Docker SDK or the docker command line."""

    def __init__(self, module: AnsibleModule, name: str, log_lines: int) -> None:
        self.module = module
        self.name = name
        self.log_lines = log_lines
        self.initial_restarts = None
        self.state = None
        self.client = None
        self.docker_bin = None
        if HAS_DOCKER_SDK:
            try:
                self.client = docker_sdk.from_env(timeout=30)
            except DockerException as exc:
                raise ProbeFailed("cannot reach the Docker daemon to watch container %r: %s" % (name, exc))
        else:
            self.docker_bin = module.get_bin_path("docker")
            if self.docker_bin is None:
                raise ProbeFailed(
                    "option container=%r needs the docker command line or the Docker SDK for Python (%s) on the host"
                    % (name, missing_required_lib("docker")))

    def _inspect(self) -> dict | None:
        if self.client is not None:
            try:
                return self.client.api.inspect_container(self.name)
            except NotFound:
                return None
            except DockerException as exc:
                raise ProbeFailed("cannot inspect container %r: %s" % (self.name, exc))
        rc, out, err = self.module.run_command([self.docker_bin, "inspect", "--type", "container", self.name])
        if rc != 0:
            if "no such" in (err + out).lower():
                return None
            raise ProbeFailed("docker inspect %s failed (rc=%d): %s" % (self.name, rc, (err or out).strip()))
        try:
            data = json.loads(out)
            return data[0]
        except (ValueError, IndexError, KeyError, TypeError):
            raise ProbeFailed("docker inspect %s returned unexpected output: %.200s" % (self.name, out))

    def logs(self) -> list:
        if self.log_lines <= 0:
            return []
        if self.client is not None:
            try:
                raw = self.client.api.logs(self.name, stdout=True, stderr=True, tail=self.log_lines)
            except DockerException as exc:
                return ["(could not read the log: %s)" % exc]
            return raw.decode("utf-8", "replace").splitlines()[-self.log_lines:]
        rc, out, err = self.module.run_command(
            [self.docker_bin, "logs", "--timestamps", "--tail", str(self.log_lines), self.name])
        if rc != 0:
            return ["(could not read the log: %s)" % (err or out).strip()]
        # stdout and stderr come back apart: merge them again by their RFC 3339 timestamps.
        lines = sorted(out.splitlines() + err.splitlines(), key=lambda line: line.split(" ", 1)[0])
        return [line.split(" ", 1)[1] if " " in line else "" for line in lines][-self.log_lines:]

    def check(self) -> None:
        """Raise ProbeFailed when the container is gone, stopped, restarting or was restarted."""
        info = self._inspect()
        if info is None:
            self.state = {"name": self.name, "status": "missing", "exit_code": None, "oom_killed": False,
                          "restart_count": 0}
            raise ProbeFailed("container %r does not exist on this host" % self.name)
        st = info.get("State") or {}
        self.state = {
            "name": (info.get("Name") or self.name).lstrip("/"),
            "status": st.get("Status", "unknown"),
            "exit_code": st.get("ExitCode"),
            "oom_killed": bool(st.get("OOMKilled")),
            "restart_count": int(info.get("RestartCount") or 0),
        }
        if self.initial_restarts is None:
            self.initial_restarts = self.state["restart_count"]
        status = self.state["status"]
        why = None
        if status in ("exited", "dead", "removing", "paused"):
            why = "is %s" % status
        elif status == "restarting" or st.get("Restarting"):
            why = "is restarting (crash loop)"
        elif self.state["restart_count"] > self.initial_restarts:
            why = "was restarted %d time(s) by its restart policy during the probe" % (
                self.state["restart_count"] - self.initial_restarts)
        if why is None:
            return
        if status == "running":
            detail = "running again; Docker keeps no exit code of the crashed run"
        else:
            detail = "exit code %s" % self.state["exit_code"]
        if self.state["oom_killed"]:
            detail += ", killed for lack of memory (OOM)"
        if st.get("Error"):
            detail += ", error: %s" % st["Error"]
        logs = self.logs()
        tail = "\n".join(logs[-10:])
        msg = "container %r %s (%s)" % (self.state["name"], why, detail)
        if tail:
            msg += "; last log lines:\n" + tail
        raise ProbeFailed(msg, container_logs=logs)


class Probe:
    """One poll walks the stages in order, as far as the server lets it."""

    def __init__(self, module: AnsibleModule, base) -> None:
        p = module.params
        self.base = base
        self.want = p["stage"]
        self.want_index = STAGES.index(self.want)
        self.model = p["model"]
        self.kind = p["request_kind"]
        self.request_timeout = p["request_timeout_seconds"]
        self.serving_attempts = p["serving_attempts"]
        self.headers = {"User-Agent": "sparkfleet.trtllm-openai_probe"}
        if p["api_key"]:
            self.headers["Authorization"] = "Bearer " + p["api_key"]
        self.ssl_context = None
        if base.scheme == "https":
            self.ssl_context = ssl.create_default_context()
            if not p["validate_certs"]:
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE
        self.start = None
        self.deadline = None
        self.stage = "unreachable"
        self.reached = {}
        self.models = []
        self.used_model = None
        self.latency_ms = None
        self.last_error = None
        self.generation_failures = 0

    def _timeout(self) -> float:
        # Never let one request run far past the overall deadline.
        return max(0.2, min(self.request_timeout, self.deadline - time.monotonic()))

    def _call(self, method: str, path: str, payload=None):
        return request(self.base, method, path, self._timeout(), headers=self.headers, payload=payload,
                       ssl_context=self.ssl_context)

    def _mark(self, stage: str) -> None:
        self.stage = stage
        if stage not in self.reached:
            self.reached[stage] = time.monotonic() - self.start

    def _client_error(self, what: str, resp) -> None:
        """4xx other than 408/429: the same request will not start working; stop now."""
        if 400 <= resp.status < 500 and resp.status not in (408, 429):
            hint = ""
            if resp.status in (401, 403):
                hint = " (check api_key)"
            elif what.startswith("POST") and resp.status in (400, 404, 422):
                hint = " (request_kind=%s; a model without a chat template needs request_kind=completion)" % self.kind
            raise ProbeFailed("%s answered HTTP %d%s: %s" % (what, resp.status, hint, resp.snippet()))

    def poll(self) -> bool:
        """Run one poll; True when the wanted stage is reached."""
        self.stage = "unreachable"
        what = "GET /health"
        try:
            resp = self._call("GET", "/health")
        except (HTTPUnreachable, HTTPTimeout) as exc:
            self.last_error = "%s: %s" % (what, exc)
            self.generation_failures = 0
            return False
        if resp.status != 200:
            self._client_error(what, resp)
            self.last_error = "%s answered HTTP %d: %s" % (what, resp.status, resp.snippet())
            self.generation_failures = 0
            return False
        self._mark("live")
        if self.want_index <= 1:
            return True

        what = "GET /v1/models"
        try:
            resp = self._call("GET", "/v1/models")
        except (HTTPUnreachable, HTTPTimeout) as exc:
            self.last_error = "/health answered 200 but %s failed: %s" % (what, exc)
            return False
        if resp.status != 200:
            self._client_error(what, resp)
            self.last_error = "/health answered 200 but %s answered HTTP %d: %s" % (what, resp.status, resp.snippet())
            return False
        try:
            data = resp.json()["data"]
            self.models = [str(entry["id"]) for entry in data]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise ProbeFailed("%s at %s did not answer an OpenAI model list: %s"
                              % (what, self.base, resp.snippet()))
        if not self.models:
            self.last_error = "%s lists no model yet" % what
            return False
        if self.model is not None and self.model not in self.models:
            raise ProbeFailed("the server at %s is live but serves %s, not the expected model %r"
                              % (self.base, ", ".join(repr(m) for m in self.models), self.model))
        self.used_model = self.model if self.model is not None else self.models[0]
        self._mark("ready")
        if self.want_index <= 2:
            return True

        if self.kind == "chat":
            path = "/v1/chat/completions"
            payload = {"model": self.used_model, "messages": [{"role": "user", "content": PROMPT}]}
        else:
            path = "/v1/completions"
            payload = {"model": self.used_model, "prompt": PROMPT}
        payload.update({"max_tokens": 1, "temperature": 0, "stream": False})
        what = "POST " + path
        timeout = self._timeout()
        try:
            resp = self._call("POST", path, payload)
        except HTTPTimeout:
            return self._generation_failed(
                "health 200 and model listed, but generation timed out: %s got no answer within %.1f s"
                % (what, timeout))
        except HTTPUnreachable as exc:
            return self._generation_failed("health 200 and model listed, but %s failed: %s" % (what, exc))
        if resp.status != 200:
            self._client_error(what, resp)
            return self._generation_failed("health 200 and model listed, but %s answered HTTP %d: %s"
                                           % (what, resp.status, resp.snippet()))
        try:
            choices = resp.json()["choices"]
            if not isinstance(choices, list) or not choices:
                raise ValueError("no choices")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return self._generation_failed("%s answered 200 without completion choices: %s" % (what, resp.snippet()))
        self.latency_ms = resp.elapsed * 1000.0
        self._mark("serving")
        self.last_error = None
        return True

    def _generation_failed(self, msg: str) -> bool:
        self.generation_failures += 1
        self.last_error = msg
        if self.serving_attempts and self.generation_failures >= self.serving_attempts:
            raise ProbeFailed("%s (%d attempt(s) in a row)" % (msg, self.generation_failures))
        return False


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            base_url=dict(type="str", required=True),
            model=dict(type="str"),
            stage=dict(type="str", choices=["live", "ready", "serving"], default="serving"),
            timeout_seconds=dict(type="float", default=1800),
            poll_interval_seconds=dict(type="float", default=1.0),
            request_timeout_seconds=dict(type="float", default=30),
            serving_attempts=dict(type="int", default=3),
            request_kind=dict(type="str", choices=["chat", "completion"], default="chat"),
            api_key=dict(type="str", no_log=True),
            validate_certs=dict(type="bool", default=True),
            container=dict(type="str"),
            container_log_lines=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        base = parse_base_url(p["base_url"])
    except ValueError as exc:
        module.fail_json(msg="base_url %r is not a usable server URL: %s (expected for example http://127.0.0.1:8355)"
                         % (p["base_url"], exc))
    for opt in ("timeout_seconds", "request_timeout_seconds", "poll_interval_seconds"):
        if p[opt] <= 0:
            module.fail_json(msg="%s must be greater than 0, got %s" % (opt, p[opt]))
    for opt in ("serving_attempts", "container_log_lines"):
        if p[opt] < 0:
            module.fail_json(msg="%s must be 0 or more, got %s" % (opt, p[opt]))

    probe = Probe(module, base)
    watch = None
    ok = False
    failure = None
    probe.start = time.monotonic()
    probe.deadline = probe.start + p["timeout_seconds"]
    attempts = 0
    try:
        if p["container"]:
            watch = ContainerWatch(module, p["container"], p["container_log_lines"])
        while True:
            attempts += 1
            if watch is not None:
                watch.check()
            if probe.poll():
                ok = True
                break
            now = time.monotonic()
            if now >= probe.deadline:
                break
            time.sleep(min(p["poll_interval_seconds"], probe.deadline - now))
    except ProbeFailed as exc:
        failure = exc

    result = dict(
        changed=False,
        stage=probe.stage,
        url=str(base),
        models=probe.models,
        seconds_to_live=_round(probe.reached.get("live")),
        seconds_to_ready=_round(probe.reached.get("ready")),
        seconds_to_serving=_round(probe.reached.get("serving")),
        latency_ms=_round(probe.latency_ms),
        attempts=attempts,
        elapsed_seconds=_round(time.monotonic() - probe.start),
        last_error=None if ok else probe.last_error,
    )
    if probe.used_model is not None:
        result["model"] = probe.used_model
    if watch is not None and watch.state is not None:
        result["container"] = watch.state
    if ok:
        module.exit_json(**result)
    if failure is not None:
        result.update(failure.extra)
        result["last_error"] = failure.msg
        module.fail_json(msg="probe of %s failed at stage %r: %s" % (base, probe.stage, failure.msg), **result)
    highest = max([STAGES.index(s) for s in probe.reached] + [0])
    module.fail_json(
        msg="timed out after %s s waiting for %s to reach stage %r; highest stage reached: %r; last error: %s"
            % (p["timeout_seconds"], base, probe.want, STAGES[highest], probe.last_error),
        **result)


if __name__ == "__main__":
    main()
