"""The env_service protocol client: JSON over HTTP POST, with timeouts and bounded retries.

An environment service hosts instances of an environment (AppWorld, a text game, the example
quiz in ``tutorial/example_env_agent/quiz_server.py``); one instance lives for one rollout. Every
call is a POST of a JSON object to ``<env_url>/<endpoint>``; the body always has the keys
``env_type``, ``task_id``, ``instance_id``, ``messages`` and ``params`` (unused ones null or
empty), which is the wire format of upstream's env services, so the same services work here:

====================  =======================================  ==========================================
endpoint              request (besides the common keys)        response
====================  =======================================  ==========================================
``get_env_profile``   ``env_type``, ``params.split``           ``{"data": [task id, ...]}``
``create``            ``env_type``, ``task_id``,               ``{"data": {"state": message(s),
                      ``instance_id`` (chosen by the client)   "info": {...}}}``
``step``              ``instance_id``, ``messages`` = action   ``{"data": {"state": message(s),
                      ``{"role": "assistant", "content"}``     "is_terminated": bool, "is_truncated"?:
                                                               bool, "reward", "info"}}``
``evaluate``          ``instance_id``, ``params``              ``{"data": number}``
                      (``{"sparse": false}`` from the judge)
``release``           ``instance_id``                          ``{"success": bool}``
====================  =======================================  ==========================================

A response whose ``success`` is ``false`` (other than from ``release``) is an error; its ``error``
text is reported. ``is_terminated`` means "the episode is over"; ``is_truncated`` (optional, newer
services) that it is over because of a limit; ``step_api.py`` says how both are read, also from
services that predate ``is_truncated``.

Failures and retries. Each request waits at most ``timeout_s`` for the connection and for each
read. A failed request is retried up to ``max_retries`` times, sleeping ``backoff_s``, then twice
that, and so on (capped at 10 s), but only when retrying cannot repeat an action:

- the request never reached the service (connection refused, unknown host, connect timeout):
  retried for every endpoint;
- it may have reached the service (no response in time, connection dropped, HTTP 5xx): retried
  only for ``get_env_profile``, ``evaluate`` and ``release``, never for ``create`` or ``step``,
  whose repetition could create a second instance or apply an action twice;
- HTTP 4xx, a body that is not a JSON object, ``success: false``: never retried (the service
  answered; asking again gives the same answer).

What is left is an :class:`EnvServiceError` naming the URL, the operation, the instance and the
reason. ``stats`` counts requests, retries and failures, for per-rollout metrics.

Not guaranteed: the timeout is per socket operation, so a service that keeps trickling bytes is
not cut off at ``timeout_s``; proxy variables (``http_proxy``...) are ignored, because services
are expected on the local network; and this client does not validate the meaning of what the
service returns beyond the shapes above.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

IDEMPOTENT = frozenset({"get_env_profile", "evaluate", "release"})
MAX_BACKOFF_S = 10.0


class EnvServiceError(RuntimeError):
    """An env-service request failed for good; the message names URL, operation and reason.

    ``maybe_delivered`` is False only when the request certainly never reached the service (so,
    for ``create``, no instance can exist).
    """

    def __init__(
        self, url: str, operation: str, reason: str, *, instance_id: str | None = None,
        attempts: int = 1, maybe_delivered: bool = True,
    ) -> None:
        self.url = url
        self.operation = operation
        self.reason = reason
        self.instance_id = instance_id
        self.attempts = attempts
        self.maybe_delivered = maybe_delivered
        where = f" (instance {instance_id})" if instance_id else ""
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"env service {url}: {operation}{where} failed{tries}: {reason}")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait for one request and how often to retry one (see the module docstring)."""

    timeout_s: float = 60.0
    max_retries: int = 2
    backoff_s: float = 0.5

    def delay(self, retry: int) -> float:
        """Seconds to sleep before retry number ``retry`` (0-based)."""
        return min(self.backoff_s * (2**retry), MAX_BACKOFF_S)


class _AttemptFailed(Exception):
    """One attempt failed; ``retryable`` says whether the policy may try again."""

    def __init__(self, reason: str, *, delivered: bool, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delivered = delivered
        self.retryable = retryable


class EnvClient:
    """Talks to one environment service. Thread-safe: each request opens its own connection."""

    def __init__(self, base_url: str, policy: RetryPolicy | None = None, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"env_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "failures": 0}

    def get_env_profile(self, env_type: str, split: str) -> list[Any]:
        """The task ids (or task records) of one split."""
        data = self._data("get_env_profile", {"env_type": env_type, "params": {"split": split}})
        if not isinstance(data, list):
            raise self._protocol("get_env_profile", f"'data' is {type(data).__name__}, expected a list of task ids")
        return data

    def create_instance(self, env_type: str, task_id: str, instance_id: str, params: dict | None = None) -> dict:
        """Create instance ``instance_id`` of task ``task_id``; returns ``{"state": ..., "info": ...}``."""
        body = {"env_type": env_type, "task_id": task_id, "instance_id": instance_id, "params": params or {}}
        data = self._data("create", body, instance_id)
        if not isinstance(data, dict) or "state" not in data:
            raise self._protocol("create", "'data' has no 'state' (the first observation)", instance_id)
        return data

    def step(self, instance_id: str, action: dict, params: dict | None = None) -> dict:
        """Apply one action; returns ``{"state", "is_terminated", "is_truncated"?, "reward"?, "info"?}``."""
        body = {"instance_id": instance_id, "messages": action, "params": params or {}}
        data = self._data("step", body, instance_id)
        if not isinstance(data, dict) or "state" not in data or "is_terminated" not in data:
            raise self._protocol("step", "'data' needs 'state' and 'is_terminated'", instance_id)
        return data

    def evaluate(self, instance_id: str, params: dict | None = None, messages: Any = None) -> float:
        """The instance's score (the judge's raw reward)."""
        body = {"instance_id": instance_id, "messages": messages or {}, "params": params or {}}
        data = self._data("evaluate", body, instance_id)
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise self._protocol("evaluate", f"'data' is {data!r}, expected a number", instance_id)
        return float(data)

    def release_instance(self, instance_id: str) -> bool:
        """Free the instance; False when the service did not know it (e.g. it was never created)."""
        return bool(self.call("release", {"instance_id": instance_id}, instance_id).get("success", False))

    def call(self, endpoint: str, body: dict, instance_id: str | None = None) -> dict:
        """POST ``body`` to ``endpoint`` under the retry policy; returns the response object."""
        url = f"{self.base_url}/{endpoint}"
        payload = {"env_type": None, "task_id": None, "instance_id": None, "messages": {}, "params": {}, **body}
        attempt = 0
        while True:
            attempt += 1
            self._count("requests")
            try:
                response = self._post(url, payload)
            except _AttemptFailed as failure:
                may_retry = failure.retryable and (not failure.delivered or endpoint in IDEMPOTENT)
                if may_retry and attempt <= self.policy.max_retries:
                    self._count("retries")
                    self._sleep(self.policy.delay(attempt - 1))
                    continue
                self._count("failures")
                reason = failure.reason
                if failure.retryable and failure.delivered and endpoint not in IDEMPOTENT:
                    reason += f"; not retried: the service may have applied the {endpoint}"
                raise EnvServiceError(
                    self.base_url, endpoint, reason, instance_id=instance_id, attempts=attempt,
                    maybe_delivered=failure.delivered,
                ) from None
            if response.get("success") is False and endpoint != "release":
                self._count("failures")
                detail = response.get("error") or response.get("message") or "no error text"
                raise EnvServiceError(self.base_url, endpoint, f"service answered success=false: {detail}", instance_id=instance_id)
            return response

    def _data(self, endpoint: str, body: dict, instance_id: str | None = None) -> Any:
        response = self.call(endpoint, body, instance_id)
        if "data" not in response:
            raise self._protocol(endpoint, f"response has no 'data' (keys: {sorted(response)})", instance_id)
        return response["data"]

    def _post(self, url: str, payload: dict) -> dict:
        request = urllib.request.Request(
            url, data=json.dumps(payload).encode("utf-8"), headers={"Content-Type": "application/json"}, method="POST"
        )
        timeout = self.policy.timeout_s
        try:
            with self._opener.open(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            try:
                text = _snippet(exc.read())
            except OSError:
                text = "(body unreadable)"
            raise _AttemptFailed(f"HTTP {exc.code} {exc.reason}: {text}", delivered=True, retryable=exc.code >= 500) from None
        except urllib.error.URLError as exc:
            raise _AttemptFailed(f"cannot connect: {_describe(exc.reason, timeout)}", delivered=False, retryable=True) from None
        except (TimeoutError, socket.timeout):
            raise _AttemptFailed(f"no response within {timeout:g} s", delivered=True, retryable=True) from None
        except (http.client.HTTPException, OSError) as exc:
            raise _AttemptFailed(f"connection lost: {_describe(exc, timeout)}", delivered=True, retryable=True) from None
        try:
            body = json.loads(raw)
        except ValueError:
            raise _AttemptFailed(f"response is not JSON: {_snippet(raw)}", delivered=True, retryable=False) from None
        if not isinstance(body, dict):
            raise _AttemptFailed(f"response is {type(body).__name__}, expected a JSON object", delivered=True, retryable=False)
        return body

    def _protocol(self, endpoint: str, reason: str, instance_id: str | None = None) -> EnvServiceError:
        self._count("failures")
        return EnvServiceError(self.base_url, endpoint, f"unexpected response: {reason}", instance_id=instance_id)

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1


def _describe(reason: Any, timeout: float) -> str:
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"timed out after {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the service running?)"
    if isinstance(reason, http.client.RemoteDisconnected):
        return "the service closed the connection without answering"
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)


def _snippet(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").strip().replace("\n", " ")
    return (text[:200] + "...") if len(text) > 200 else (text or "(empty body)")
