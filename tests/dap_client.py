"""A minimal Debug Adapter Protocol client over TCP, for tests that attach to ``astuner --debugpy``.

It speaks just enough DAP to stand in for VSCode: ``Content-Length`` framed JSON, requests with
sequence numbers, responses matched by ``request_seq``, and events kept in arrival order. Every
read is bounded by the deadline given at construction (a hung adapter fails the test, it never
blocks it). Not a general client: no reverse requests (``runInTerminal``) are answered.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any


class DapError(AssertionError):
    """The adapter failed a request, closed the connection, or the deadline passed."""


class DapClient:
    """One DAP session on ``host:port``; every wait ends by ``deadline`` (a ``time.monotonic()`` value)."""

    def __init__(self, host: str, port: int, *, deadline: float) -> None:
        self.deadline = deadline
        self.sock = socket.create_connection((host, port), timeout=self._left())
        self.events: list[dict[str, Any]] = []
        self._buffer = b""
        self._responses: dict[int, dict[str, Any]] = {}
        self._seq = 0

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DapError("DAP deadline passed")
        return left

    def send(self, command: str, arguments: dict[str, Any] | None = None) -> int:
        """Send a request; returns its ``seq`` (collect the answer with :meth:`response`)."""
        self._seq += 1
        body = json.dumps({"seq": self._seq, "type": "request", "command": command, "arguments": arguments or {}}).encode()
        self.sock.settimeout(self._left())
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self._seq

    def _fill(self) -> None:
        """Receive at least one more byte into the buffer, or fail at the deadline or on EOF."""
        self.sock.settimeout(self._left())
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise DapError("DAP deadline passed while reading") from None
        if not chunk:
            raise DapError("the debug adapter closed the connection")
        self._buffer += chunk

    def _read_message(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        header, rest = self._buffer.split(b"\r\n\r\n", 1)
        fields = dict(line.split(b":", 1) for line in header.split(b"\r\n") if b":" in line)
        length = int(fields[b"Content-Length"].strip())
        while len(rest) < length:
            self._fill()
            rest = self._buffer.split(b"\r\n\r\n", 1)[1]
        self._buffer = rest[length:]
        return json.loads(rest[:length])

    def _pump(self) -> None:
        """Read one message and file it: a response by ``request_seq``, an event in ``events``."""
        message = self._read_message()
        if message.get("type") == "response":
            self._responses[message["request_seq"]] = message
        elif message.get("type") == "event":
            self.events.append(message)

    def response(self, seq: int) -> dict[str, Any]:
        """The successful response to request ``seq``; :class:`DapError` if it failed."""
        while seq not in self._responses:
            self._pump()
        answer = self._responses.pop(seq)
        if not answer.get("success"):
            raise DapError(f"{answer.get('command')} failed: {answer.get('message')} {answer.get('body')}")
        return answer

    def request(self, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and wait for its successful response."""
        return self.response(self.send(command, arguments))

    def wait_event(self, name: str, **body: Any) -> dict[str, Any]:
        """The first event ``name`` not yet consumed whose body has every item of ``body``; removed from ``events``.

        A failed response to any pending request ends the wait with :class:`DapError`.
        """
        index = 0
        while True:
            while index < len(self.events):
                event = self.events[index]
                if event.get("event") == name and all(event.get("body", {}).get(k) == v for k, v in body.items()):
                    return self.events.pop(index)
                index += 1
            self._pump()
            failed = [r for r in self._responses.values() if not r.get("success")]
            if failed:
                raise DapError(f"while waiting for {name!r}: {failed[0].get('command')} failed: {failed[0].get('message')}")

    def close(self) -> None:
        self.sock.close()
