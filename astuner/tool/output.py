"""Capped capture of one output stream: the head and the tail are kept, the middle is counted.

Why both ends: a program that floods its output usually says what went wrong at the end (a
traceback), and what it was doing at the start. The buffer never holds more than about twice
its cap however much arrives, so a program printing gigabytes costs the caller no memory.
"""

from __future__ import annotations


class CappedBuffer:
    """Keeps the first and last bytes of a stream, counting what was dropped in between."""

    def __init__(self, max_bytes: int) -> None:
        self.head_limit = max_bytes // 2
        self.tail_limit = max_bytes - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    def text(self, stream_name: str) -> str:
        """The kept bytes as text (invalid UTF-8 replaced), with a note of the cut, if any."""
        tail = bytes(self.tail[len(self.tail) - self.tail_limit :]) if self.tail_limit else b""
        kept = len(self.head) + len(tail)
        head_text = self.head.decode("utf-8", errors="replace")
        tail_text = tail.decode("utf-8", errors="replace")
        if kept >= self.total:
            return head_text + tail_text
        cut = self.total - kept
        return (
            f"{head_text}\n[astuner: {stream_name} truncated: {cut} of {self.total} bytes cut, "
            f"first {len(self.head)} and last {len(tail)} kept]\n{tail_text}"
        )
