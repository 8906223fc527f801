"""How one sandbox is built: the command line for each isolation mode, the environment, the
directories hidden from the code, the dedicated uid it runs as, and what each mode leaves open.

Why here and not in the worker: these choices depend on the parent (is it root, where does its
interpreter live, is ``bwrap`` installed), are made once per sandbox, and must be inspectable
in tests without starting anything. What the modes protect, item by item, is listed in
``sandbox.py``; ``protections`` and ``gaps`` below word them for the fallback's one-time warning.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from astuner.tool.scratch import POLL_S

ENV_PASSTHROUGH = ("PATH", "LANG", "LC_ALL")
SINGLE_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
UID_BASE = 0x70000000
"""Dedicated uids are taken from [UID_BASE, UID_BASE + UID_SLOTS): above the ranges distributions
and systemd give to users and containers, below systemd's "foreign" range. The window bounds the
number of lock files (one per slot ever used) and the number of sandboxes alive at once on a host."""
UID_SLOTS = 1 << 12
_MOUNT_POINT_TMPFS_BYTES = 1 << 20


def child_env(scratch: str) -> dict[str, str]:
    """The allow-listed environment of the code: nothing secret, UTF-8, home in the scratch dir."""
    env = {name: os.environ[name] for name in ENV_PASSTHROUGH if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(PYTHONIOENCODING="utf-8", PYTHONUTF8="1", HOME=scratch, TMPDIR=scratch)
    # One BLAS/OpenMP thread: on many-core hosts each pool thread reserves stack address space,
    # which would eat the RLIMIT_AS budget before the code allocates anything.
    env.update({name: "1" for name in SINGLE_THREAD_VARS})
    # Two malloc arenas: glibc otherwise reserves 64 MiB of address space per thread's arena, and
    # a few threads would exhaust RLIMIT_AS without allocating anything.
    env["MALLOC_ARENA_MAX"] = "2"
    return env


@lru_cache(maxsize=1)
def worker_source() -> str:
    """The supervisor program, passed to ``python -c`` so the sandbox needs no file of ours."""
    return Path(__file__).with_name("worker.py").read_text(encoding="utf-8")


def bwrap_binary() -> str | None:
    return shutil.which("bwrap")


@lru_cache(maxsize=4)
def bwrap_options(binary: str) -> frozenset[str]:
    """The options this bwrap knows (``--size`` came in 0.7, ``--disable-userns`` in 0.8)."""
    try:
        text = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(re.findall(r"^\s+(--[a-z0-9-]+)", text, re.M))


def interpreter_dirs() -> list[str]:
    """Directories the sandboxed interpreter must be able to read: its executable's directory and
    its prefixes (standard library, site-packages). Real paths, nested ones dropped."""
    candidates = {
        os.path.dirname(os.path.realpath(sys.executable)),
        *(os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)),
    }
    return _outermost(p for p in candidates if os.path.isdir(p))


def _outermost(paths) -> list[str]:
    """``paths`` without those inside another one of them, sorted."""
    kept: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return sorted(kept)


def _closed_ancestor(path: str) -> str | None:
    """The first directory on the way to ``path`` that other users may not traverse, if any: a
    dedicated uid could not reach the interpreter through it."""
    parts = Path(path).parts
    for i in range(2, len(parts) + 1):
        candidate = str(Path(*parts[:i]))
        try:
            mode = os.stat(candidate).st_mode
        except OSError:
            return None
        if not mode & stat.S_IXOTH:
            return candidate
    return None


def hidden_dirs(needed: list[str]) -> list[str]:
    """Directories the sandbox covers with an empty tmpfs: the temporary directories (so the code
    neither sees nor fills the host's), the caller's home, and every directory on the way to the
    interpreter that other users cannot traverse (root's home, typically)."""
    fixed = ["/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir(), os.path.expanduser("~")]
    closed = [_closed_ancestor(p) for p in needed]
    dirs = {os.path.realpath(d) for d in fixed + [c for c in closed if c]}
    return _outermost(d for d in dirs if d != "/" and os.path.isdir(d))


def rebinds(needed: list[str], hidden: list[str]) -> list[str]:
    """Interpreter directories that a hidden directory would cover, to be bound back read-only."""
    return [p for p in needed if any(p == h or p.startswith(h + "/") for h in hidden)]


def _is_temp_dir(path: str) -> bool:
    temps = {os.path.realpath(p) for p in ("/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir())}
    return path in temps


BWRAP_SCRATCH_NAME = "astuner_py_sandbox"
"""The scratch dir's name inside a bwrap sandbox's private temporary directory (the same in every sandbox)."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything needed to start one sandbox's supervisor."""

    mode: str
    argv: list[str]
    env: dict[str, str]
    scratch: str
    uid: int | None


def worker_spec(mode: str, scratch_mb: int, uid: int | None) -> WorkerSpec:
    """The command line of one sandbox in ``mode`` (``"bwrap"`` or ``"process"``), running as the
    dedicated ``uid`` (root parents) or as the caller (``uid=None``)."""
    needed = interpreter_dirs()
    hidden = hidden_dirs(needed)
    binds = rebinds(needed, hidden)
    closed = [c for c in (_closed_ancestor(p) for p in needed) if c]
    scratch_bytes = scratch_mb * 1024 * 1024
    overlays = [
        (d, scratch_bytes if _is_temp_dir(d) else _MOUNT_POINT_TMPFS_BYTES, 0o1777 if _is_temp_dir(d) else 0o755)
        for d in hidden
    ]
    # Under bwrap the temporary directory is the sandbox's own tmpfs (``hidden_dirs``), so one fixed
    # name cannot collide, and a program's output that shows its path (a traceback) is the same
    # in every run: rollouts stay reproducible. The 'process' fallback shares the host's /tmp and
    # needs a unique name (its tracebacks then differ between runs).
    name = BWRAP_SCRATCH_NAME if mode == "bwrap" else f"astuner_py_{secrets.token_hex(6)}"
    scratch = os.path.join(tempfile.gettempdir(), name)
    config = {
        "mode": mode,
        "uid": uid,
        "parent_pid": os.getpid() if mode == "process" else None,
        "scratch": scratch,
        "overlays": overlays,
        "binds": binds,
        "closed": closed,
        # Processes the count starts with: supervisor and program, plus bwrap's pid 1 where it
        # runs in the sandbox's user namespace (non-root callers).
        "nproc_base": 3 if mode == "bwrap" and os.getuid() != 0 else 2,
    }
    python = [sys.executable, "-I", "-u", "-X", "utf8", "-c", worker_source(), json.dumps(config)]
    if mode == "process":
        return WorkerSpec(mode, python, child_env(scratch), scratch, uid)
    binary = bwrap_binary() or "bwrap"
    known = bwrap_options(binary)
    argv = [binary, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--hostname", "sandbox"]
    if os.getuid() == 0:
        # No user namespace: the supervisor switches to the dedicated uid itself, so the kernel
        # counts RLIMIT_NPROC for that uid, which root could not be held to.
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user"] + (["--disable-userns"] if "--disable-userns" in known else [])
    argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path, size, mode_bits in overlays:
        argv += ["--perms", f"{mode_bits:o}"] if "--perms" in known else []
        argv += ["--size", str(size)] if "--size" in known else []
        argv += ["--tmpfs", path]
    for path in binds:
        # --dir first: the parents bwrap would create on its own are 0700, closed to the uid.
        argv += ["--dir", path, "--ro-bind", path, path]
    return WorkerSpec(mode, argv + ["--", *python], child_env(scratch), scratch, uid)


def _lock_dir() -> str | None:
    """A root-only directory for the uid locks, shared by every astuner process on the host."""
    for base in ("/run", "/var/lock", tempfile.gettempdir()):
        path = os.path.join(base, "astuner-sandbox-uids")
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o077:
            return path
    return None


class UidLeases:
    """Dedicated uids for root parents, one per live sandbox, unique across processes.

    A sandbox's uid is its boundary in both modes: RLIMIT_NPROC counts its processes alone, the
    cleanup ``kill(-1)`` reaches only them, and root-owned files stay out of reach. Uniqueness
    across astuner processes on one host comes from an exclusive ``flock`` on a per-uid file in a
    root-only directory, held while the sandbox lives (the kernel drops it if the holder dies).
    Without such a directory, uids are random within the range: a clash is then possible, though
    rare, and would let one sandbox's cleanup kill another's program.
    """

    def __init__(self) -> None:
        self._dir = _lock_dir()
        self._held: dict[int, int | None] = {}
        self._cursor = random.randrange(UID_SLOTS)

    def acquire(self) -> int:
        for _ in range(UID_SLOTS):
            self._cursor = (self._cursor + 1) % UID_SLOTS
            uid = UID_BASE + self._cursor
            if uid in self._held:
                continue
            if self._dir is None:
                self._held[uid] = None
                return uid
            fd = os.open(os.path.join(self._dir, str(uid)), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self._held[uid] = fd
            return uid
        raise RuntimeError("no free sandbox uid")

    def release(self, uid: int) -> None:
        fd = self._held.pop(uid, None)
        if fd is not None:
            os.close(fd)

    def forget(self) -> None:
        """In a forked child: drop the parent's leases without unlocking them (the locks belong
        to the parent's open file descriptions; closing our copies keeps them held)."""
        for fd in self._held.values():
            if fd is not None:
                os.close(fd)
        self._held.clear()


def kill_uid(uid: int, rounds: int = 20) -> int:
    """SIGKILL every live process whose real, effective or saved uid is ``uid``, repeating until a
    scan finds none (children forked during a round are caught by the next). Returns how many
    were signalled. Only meaningful for a dedicated uid."""
    total = 0
    for _ in range(rounds):
        found = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status", "rb") as f:
                    text = f.read()
            except OSError:
                continue
            fields = dict(line.split(b":", 1) for line in text.splitlines() if b":" in line)
            try:
                uids = {int(u) for u in fields[b"Uid"].split()[:3]}
                zombie = fields[b"State"].split()[0] in (b"Z", b"X")
            except (KeyError, ValueError, IndexError):
                continue
            if uid in uids and not zombie:
                try:
                    os.kill(int(entry), signal.SIGKILL)
                    found += 1
                except OSError:
                    pass
        total += found
        if not found:
            break
    return total


def protections(info: dict) -> list[str]:
    """What a ``process`` sandbox with the ``ready`` info of its supervisor holds the code to, in the
    words of the one-time warning (tests/tool/test_sandbox_corpus.py and test_sandbox_fallback.py run a
    hostile program against each item)."""
    scratch_cap = ("a private tmpfs of scratch_mb for /tmp, /var/tmp and /dev/shm each" if info.get("mounts") else
                   f"scratch_mb for its scratch dir on the host disk, checked every {POLL_S:g} s (killed when over)")
    return [
        "a wall-clock timeout after which every process it started is killed (descendants that left "
        "its session or group too, through the supervisor's child subreaper)",
        "memory_mb of address space per process",
        "max_output_chars bytes of stdout and of stderr each (head and tail kept, the cut stated in the reply)",
        f"max_file_mb per file, and {scratch_cap}; the scratch dir is removed after the call",
        "an allow-listed environment, no inherited descriptors, no_new_privs",
    ] + (["max_processes more processes"] if info.get("nproc_scope") == "sandbox" else [])


def gaps(mode: str, info: dict) -> list[str]:
    """What a sandbox in ``mode`` with the ``ready`` info of its supervisor does not protect."""
    out = []
    if mode == "process":
        root = info.get("uid") == 0
        if not info.get("net"):
            out.append(f"network (no network namespace: {info.get('unshare_error', 'not permitted')})")
        if not info.get("mounts"):
            out.append("files outside the scratch dir (no mount namespace): the host's temporary directories and "
                       "the caller's home are not covered, and what the code writes there, as far as its uid may, "
                       "is neither capped in total (max_file_mb per file only) nor removed")
            out.append("the scratch dir's cap is a poll: the code can overshoot scratch_mb by what it writes "
                       f"in {POLL_S:g} s")
        if info.get("dedicated"):
            out.append("reading world-readable host files, and writing world-writable ones outside the temp dirs")
        else:
            out.append(f"files: the code runs as the caller (uid {info.get('uid')}) and reads and writes what it can, "
                       "the caller's open files included (through /proc/<pid>/fd; output written to the caller's "
                       "log that way is not capped)")
            out.append("processes: the code can signal the caller, the caller's other processes and its own "
                       "supervisor; its descendants (setsid() daemons included) are ended after the call through "
                       "the supervisor's child subreaper, unless the code killed the supervisor first")
        if info.get("nproc_scope") == "user":
            out.append("no per-sandbox process cap: root is exempt from RLIMIT_NPROC" if root else
                       "RLIMIT_NPROC counts all of the caller's processes, not the sandbox's")
        out.append("host processes are visible (no PID namespace), including their command lines")
        out.append("devices: the host's /dev, GPUs included, with the uid's permissions")
    elif not info.get("dedicated"):
        out.append("files the caller's user can read anywhere except its home and temporary directories")
    out.append("no seccomp filter: the whole kernel syscall interface is reachable")
    out.append("CPU share (no cgroup quota)")
    return out
