"""A registry of what astuner launched, and ``--kill`` that ends only that (docs/architecture.md, contract 7).

Every long-lived process astuner starts (the Ray head or a Ray worker node, vLLM servers, the log
viewer, workers) is recorded as a JSON file in ``$ASTUNER_PROCS_DIR`` (default
``~/.cache/astuner/procs``) with its pid, process group, kernel start time, owner and command line
(``spawn`` starts and records in one step; ``register`` records a process started elsewhere).

``kill_registered("python|ray")`` ends the registered processes whose tag or command line contains
one of the ``|``-separated keywords (a plain substring match on *our* records, never a search of the
machine's process table), together with their descendants (found in psutil's process table before
any signal is sent) and their process group. SIGTERM first, SIGKILL after ``grace_s``. A record of
kind ``ray`` (a Ray node astuner started with ``--with-ray``) is first stopped with ``ray stop``, Ray's
own shutdown — but only when every Ray daemon on this machine (``raylet``, ``gcs_server``) belongs
to that record's process tree, because ``ray stop`` ends *all* Ray processes it can see, including
another user's cluster when run as root. Otherwise astuner skips ``ray stop``, says so, and ends
its own tree directly (SIGTERM to ``ray start --block`` makes Ray drain and stop its daemons).

Each record names the **run** that started it (``run``: ``"<pid>:<start time>"`` of the astuner
process that began the run, kept in ``$ASTUNER_RUN`` so that processes the run starts inherit it).
``kill(..., spare_live_runs=True)`` (what ``--autokill`` uses) skips the records of *other* runs
that are still alive, so a run's ``--autokill`` clears what dead runs left behind without ending a
live run's Ray node or vLLM server; a record without a ``run`` counts as an orphan. Plain ``kill``
(``--kill KEYWORDS``) ends matching records of every run of this user.

Never signalled: a process that is not a registered one or one of their descendants; the caller
and its ancestors; a process owned by another user; a pid that was reused by another program since
it was recorded (the kernel start time must still match, else the stale record is dropped).

Process facts come from psutil (parents, children, status, user, name), except the start time:
records and run ids keep the kernel's start time in clock ticks since boot, read from
``/proc/<pid>/stat`` (``_start_time`` says why), so a record compares exactly with any later
reading, whichever astuner process wrote it. Linux only.

Not guaranteed: a descendant that left the tree before the kill (re-parented to init by a
double fork, e.g. a daemon that detached itself) is only reached through the process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RAY_DAEMONS = ("raylet", "gcs_server")
"""Process names (psutil's ``name()``, the kernel's ``comm``) that mark a running Ray node."""
RUN_ENV = "ASTUNER_RUN"
"""Environment variable holding the current run's id (``"<pid>:<start time>"``), inherited by its processes."""


def registry_dir() -> Path:
    default = Path.home() / ".cache" / "astuner" / "procs"
    path = Path(os.environ.get("ASTUNER_PROCS_DIR", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` in clock ticks since boot (field 22 of ``/proc/<pid>/stat``);
    None when there is no such process.

    Read by hand on purpose: psutil's ``create_time()`` is this value converted to seconds since
    the epoch through the boot time, which moves when the system clock is adjusted, so two
    readings of one process need not be equal; the tick count never changes. Records, run ids and
    pid-reuse checks all compare tick counts (the unit of every record).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19]) if len(fields) > 19 else None


def _uid(pid: int) -> int | None:
    """The effective user id of ``pid``; None when it is gone or cannot be read."""
    try:
        return psutil.Process(pid).uids().effective
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _is_zombie(pid: int) -> bool:
    """True for a zombie, a dead process or a pid with no process."""
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def _ancestors() -> set[int]:
    """This process and its ancestors, init excluded."""
    me = psutil.Process()
    return {me.pid} | {parent.pid for parent in me.parents() if parent.pid > 1}


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` in the process tree right now (children first, breadth-first)."""
    children: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["ppid"]):
        parent = proc.info["ppid"]
        if parent is not None:
            children.setdefault(parent, []).append(proc.pid)
    out, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        out.append(child)
        queue.extend(children.get(child, []))
    return out


def _alive(rec: dict) -> bool:
    return _start_time(rec["pid"]) == rec.get("start_time") and not _is_zombie(rec["pid"])


def current_run() -> str:
    """This run's id: inherited through ``$ASTUNER_RUN``, else this process's (then exported for its children)."""
    run = os.environ.get(RUN_ENV, "")
    if not run_alive(run):
        run = f"{os.getpid()}:{_start_time(os.getpid())}"
        os.environ[RUN_ENV] = run
    return run


def run_alive(run: str) -> bool:
    """Whether the process that began ``run`` (``"<pid>:<start time>"``) still runs (same start time)."""
    pid, _, start = (run or "").partition(":")
    if not (pid.isdigit() and start.isdigit()):
        return False
    return _start_time(int(pid)) == int(start) and not _is_zombie(int(pid))


def register(pid: int, tag: str, command: list[str], *, kind: str = "", extra: dict | None = None) -> Path:
    """Record a process astuner started so that ``--kill`` may end it later.

    ``kind`` names special handling at kill time (``"ray"``: try ``ray stop`` first); ``extra`` is
    free data kept with the record (e.g. the Ray address).
    """
    record = {
        "pid": pid,
        "pgid": os.getpgid(pid),
        "start_time": _start_time(pid),
        "uid": os.getuid(),
        "tag": tag,
        "command": [str(c) for c in command],
        "kind": kind,
        "extra": extra or {},
        "run": current_run(),
        "registered_at": time.time(),
    }
    path = registry_dir() / f"{tag}-{pid}.json"
    path.write_text(json.dumps(record))
    return path


def spawn(
    command: list[str],
    tag: str,
    *,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    kind: str = "",
    extra: dict | None = None,
) -> subprocess.Popen:
    """Start ``command`` in its own session (so a kill takes its whole group) and register it.

    Output goes to ``log_path`` (appended) or is discarded; stdin is closed.
    """
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        proc = subprocess.Popen(
            [str(c) for c in command],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        if log_path:
            out.close()
    register(proc.pid, tag, command, kind=kind, extra=extra)
    return proc


def records() -> list[tuple[Path, dict]]:
    """The live records of this user, oldest first; stale ones (process gone or pid reused) are removed."""
    out = []
    for path in sorted(registry_dir().glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if rec.get("uid") != os.getuid():
            continue
        if not _alive(rec):
            path.unlink(missing_ok=True)
            continue
        out.append((path, rec))
    out.sort(key=lambda item: item[1].get("registered_at", 0))
    return out


def find(tag: str = "", kind: str = "") -> list[dict]:
    """Live records with this tag and/or kind."""
    return [rec for _, rec in records() if (not tag or rec.get("tag") == tag) and (not kind or rec.get("kind") == kind)]


@dataclass
class KillReport:
    """What ``kill`` did: the registered pids it ended, their descendants, and notes for the user."""

    pids: list[int] = field(default_factory=list)
    descendants: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def kill_registered(keywords: str, grace_s: float = 3.0) -> list[int]:
    """End registered processes matching any ``|``-separated keyword; returns the registered pids signalled."""
    return kill(keywords, grace_s).pids


def kill(keywords: str, grace_s: float = 3.0, *, spare_live_runs: bool = False,
         only_pid: int | None = None) -> KillReport:
    """End registered processes matching any ``|``-separated keyword, with their descendants.

    ``spare_live_runs``: leave alone the records of other runs that are still alive (``--autokill``).
    ``only_pid``: end only the record of that pid (a run stopping the Ray head it started).
    """
    words = [w.strip() for w in keywords.split("|") if w.strip()]
    report = KillReport()
    protected = _ancestors()
    mine = current_run() if spare_live_runs else ""
    victims: list[tuple[Path, dict]] = []
    for path, rec in records():
        text = " ".join([rec.get("tag", ""), *rec.get("command", [])])
        if rec["pid"] in protected or not any(w in text for w in words):
            continue
        if only_pid is not None and rec["pid"] != only_pid:
            continue
        owner = rec.get("run", "")
        if spare_live_runs and owner and owner != mine and run_alive(owner):
            report.notes.append(f"kept pid {rec['pid']} ({rec.get('tag')}): the run that started it "
                                f"(pid {owner.split(':')[0]}) is still alive")
            continue
        if _uid(rec["pid"]) != os.getuid():
            report.notes.append(f"skipped pid {rec['pid']} ({rec.get('tag')}): it now belongs to another user")
            continue
        victims.append((path, rec))
    if not victims:
        return report
    me = os.getuid()
    trees: dict[int, list[int]] = {}
    for _, rec in victims:
        below = [p for p in descendants(rec["pid"]) if p not in protected and _uid(p) == me]
        trees[rec["pid"]] = below
    for _, rec in victims:
        if rec.get("kind") == "ray":
            _ray_stop(rec, trees[rec["pid"]], report)
    everything = {rec["pid"]: _start_time(rec["pid"]) for _, rec in victims}
    for below in trees.values():
        everything.update({p: _start_time(p) for p in below})
    for _, rec in victims:
        _signal_group(rec, signal.SIGTERM, protected)
    for pid in everything:
        _signal_pid(pid, everything[pid], signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_still(pid, st) for pid, st in everything.items()):
        time.sleep(0.1)
    for _, rec in victims:
        if _alive(rec):
            _signal_group(rec, signal.SIGKILL, protected)
    for pid, st in everything.items():
        if _still(pid, st):
            _signal_pid(pid, st, signal.SIGKILL)
    for path, rec in victims:
        path.unlink(missing_ok=True)
        report.pids.append(rec["pid"])
        report.descendants.extend(trees[rec["pid"]])
    return report


def _still(pid: int, start_time: int | None) -> bool:
    return start_time is not None and _start_time(pid) == start_time and not _is_zombie(pid)


def _signal_pid(pid: int, start_time: int | None, sig: int) -> None:
    if not _still(pid, start_time):
        return
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(rec: dict, sig: int, protected: set[int]) -> None:
    """Signal the record's process group when the record leads it (and the caller is not in it)."""
    pgid = rec.get("pgid")
    try:
        if pgid == rec["pid"] and os.getpgid(0) != pgid and not protected & set(_group_members(pgid)):
            os.killpg(pgid, sig)
        elif _alive(rec):
            os.kill(rec["pid"], sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_members(pgid: int) -> list[int]:
    out = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid:
                out.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return out


def foreign_ray_daemons(tree: set[int]) -> list[int]:
    """Ray daemons (raylet, gcs_server) running on this machine outside ``tree``, any user."""
    gone = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    return [
        proc.pid for proc in psutil.process_iter(["name", "status"])
        if proc.pid not in tree and proc.info["name"] in RAY_DAEMONS and proc.info["status"] not in gone
    ]


def _ray_stop(rec: dict, tree: list[int], report: KillReport) -> None:
    """Run ``ray stop`` for a Ray node we started, unless it would also hit Ray processes we did not start."""
    foreign = foreign_ray_daemons({rec["pid"], *tree})
    ray_cli = rec.get("extra", {}).get("ray_cli") or shutil.which("ray")
    if foreign or not ray_cli:
        why = (
            f"it would also end Ray processes astuner did not start (pids {foreign[:5]})"
            if foreign else "the 'ray' CLI is not on PATH"
        )
        report.notes.append(
            f"not running 'ray stop': {why}; ending astuner's Ray node (pid {rec['pid']}) and its processes directly"
        )
        _drain(rec)
        return
    try:
        done = subprocess.run([ray_cli, "stop"], capture_output=True, text=True, timeout=120)
        report.notes.append(f"ran 'ray stop' for astuner's Ray node (pid {rec['pid']}): exit {done.returncode}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        report.notes.append(f"'ray stop' failed ({type(exc).__name__}); ending astuner's Ray node directly")


def _drain(rec: dict, timeout_s: float = 40.0) -> None:
    """SIGTERM ``ray start --block`` alone and wait: Ray then drains and stops its own daemons."""
    try:
        os.kill(rec["pid"], signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(rec):
        time.sleep(0.2)
