"""A registry of processes astuner launched, and ``--kill`` that ends only those (DESIGN contract 7).

Every long-lived process astuner starts (Ray, vLLM servers, the log viewer) is recorded as a JSON
file in ``$ASTUNER_PROCS_DIR`` (default ``~/.cache/astuner/procs``) with its pid, process group,
kernel start time and command line. ``kill_registered("python|ray")`` ends the registered
processes whose tag or command line contains one of the keywords, with their process groups —
never a process that is not in the registry, never the caller or its ancestors, never a pid that
was reused by another program since (the start time must still match).

Not guaranteed: a registered process that escaped its process group (a double-forked daemon) is
not found by the group kill; processes of another user are skipped.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path


def registry_dir() -> Path:
    default = Path.home() / ".cache" / "astuner" / "procs"
    path = Path(os.environ.get("ASTUNER_PROCS_DIR", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def register(pid: int, tag: str, command: list[str]) -> Path:
    """Record a process astuner started so that ``--kill`` may end it later."""
    record = {
        "pid": pid,
        "pgid": os.getpgid(pid),
        "start_time": _start_time(pid),
        "uid": os.getuid(),
        "tag": tag,
        "command": command,
    }
    path = registry_dir() / f"{tag}-{pid}.json"
    path.write_text(json.dumps(record))
    return path


def kill_registered(keywords: str, grace_s: float = 3.0) -> list[int]:
    """End registered processes matching any ``|``-separated keyword; returns the pids signalled."""
    words = [w.strip() for w in keywords.split("|") if w.strip()]
    protected = _ancestors()
    victims: list[tuple[Path, dict]] = []
    for path in sorted(registry_dir().glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if _start_time(rec["pid"]) != rec.get("start_time") or rec.get("uid") != os.getuid():
            path.unlink(missing_ok=True)
            continue
        text = " ".join([rec.get("tag", ""), *rec.get("command", [])])
        if rec["pid"] in protected or not any(w in text for w in words):
            continue
        victims.append((path, rec))
    for _, rec in victims:
        _signal(rec, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_start_time(r["pid"]) == r.get("start_time") for _, r in victims):
        time.sleep(0.1)
    for path, rec in victims:
        if _start_time(rec["pid"]) == rec.get("start_time"):
            _signal(rec, signal.SIGKILL)
        path.unlink(missing_ok=True)
    return [rec["pid"] for _, rec in victims]


def _signal(rec: dict, sig: int) -> None:
    try:
        if rec.get("pgid") == rec["pid"] and rec["pgid"] not in _ancestors():
            os.killpg(rec["pgid"], sig)
        else:
            os.kill(rec["pid"], sig)
    except ProcessLookupError:
        pass
