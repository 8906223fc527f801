"""The supervisor inside one sandbox: set up, wait for exactly one program, run it in a fresh
child process, report how it ended, kill what it left behind, exit.

Why a separate program: the warm pool (``warm.py``) starts these ahead of time, so a tool call only
pays for a ``fork`` of this small, already-initialised interpreter instead of an interpreter
start-up, and the limits are applied here, by the sandboxed process itself, never through a
``preexec_fn`` that would fork the large training process. Each supervisor serves one program and
then exits: nothing a program does can leak into the next one.

It is started as ``python -I -u -X utf8 -c <this file's source> <config JSON>`` (directly for
``process`` isolation, inside ``bwrap`` otherwise) and uses the standard library only, so it needs
neither astuner nor any file of its own on the sandbox's filesystem.

Protocol on fd 3, a Unix stream socket to the parent; each message is one JSON object per line:

* supervisor -> parent: ``{"ready": {...}}`` once set up (what isolation it obtained), with the
  read ends of the program's stdout and stderr pipes attached (``SCM_RIGHTS``), or
  ``{"error": "..."}`` if setup failed;
* parent -> supervisor: a JSON header line (``rlimits``, ``extra_processes``), the program's bytes,
  then end-of-file;
* supervisor -> parent: ``{"accepted": true}``, ``{"child": pid}``, then
  ``{"status": code, "cpu_s": ..., "maxrss_kb": ...}`` with ``code`` as
  ``os.waitstatus_to_exitcode`` gives it (negative: killed by that signal), sent once every
  process of the program is gone; the supervisor then exits at once.

The program's output pipes are created here, not inherited from the parent, so only the program
and its descendants hold their write ends (bwrap's own processes hold the spawn's stdout and
stderr, which carry start-up errors only): the parent sees end-of-output as soon as the program
is gone, without waiting for the sandbox's namespaces to be torn down.

Not guaranteed: the child is a fork of this interpreter, so modules this file imported are already
in ``sys.modules`` and the supervisor's frames are reachable through ``sys._getframe``; they hold
nothing but the program itself. Interpreter shutdown is emulated (non-daemon threads joined,
``atexit`` run, streams flushed, exit codes as CPython computes them), not performed.
"""

import ctypes
import json
import os
import resource
import signal
import socket
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT = 1, 2, 4, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
REAP_DEADLINE_S = 5.0
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
CONTROL_FD = 3

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data):
    def enc(s):
        return None if s is None else os.fsencode(s)

    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _loopback_up():
    """Bring ``lo`` up in a fresh network namespace, as bwrap does, so local sockets work."""
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def _private_namespaces(info):
    """``process`` isolation: a new network and mount namespace where the kernel allows it
    (root, or an unprivileged user namespace). Records what it got in ``info``."""
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        flags = CLONE_NEWNS | CLONE_NEWNET
    else:
        flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET
    if _libc.unshare(flags) != 0:
        info["unshare_error"] = os.strerror(ctypes.get_errno())
        return False
    if uid != 0:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        info["userns"] = True
    info["net"] = True
    try:
        _loopback_up()
    except OSError:
        pass
    return True


def _overlay(overlays, binds):
    """Cover each overlay directory with a private tmpfs, then bind the interpreter's directories
    that lay under them back, read-only (their fds are opened before they are covered)."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    fds = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in binds}
    for path, size, mode in overlays:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode={mode:o}")
    for path, fd in fds.items():
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        try:
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        except OSError:
            pass  # a locked mount flag refuses the remount; the bind is still there
        os.close(fd)


def _drop_to(uid):
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _close_other_fds(keep):
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def setup(cfg):
    """Everything that happens before a program arrives; returns what the parent is told."""
    info = {"net": cfg["mode"] == "bwrap", "mounts": cfg["mode"] == "bwrap", "userns": False}
    _close_other_fds({0, 1, 2, CONTROL_FD})
    if cfg["mode"] == "process" and _private_namespaces(info):
        _overlay(cfg["overlays"], cfg["binds"])
        info["mounts"] = True
    # Without the mount namespace, a uid of its own could not reach an interpreter behind a
    # closed directory (root's home): then the program runs as the caller, and says so.
    dedicated = cfg["uid"] is not None and (info["mounts"] or not cfg["closed"])
    if dedicated:
        _drop_to(cfg["uid"])
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")  # no ptrace, no /proc/<pid>/fd for peers
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    # Orphans of the program (a double fork, a setsid daemon) become our children instead of
    # init's, so _reap_leftovers finds every descendant even where no uid or namespace holds them.
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "child_subreaper")
    if cfg["parent_pid"] is not None and os.getppid() != cfg["parent_pid"]:
        raise SystemExit(0)  # the parent died before the death signal was armed
    os.makedirs(cfg["scratch"], mode=0o700)
    os.chdir(cfg["scratch"])
    os.environ.pop("PWD", None)  # bwrap sets it; the program's environment is the parent's allow-list
    info.update(uid=os.getuid(), dedicated=dedicated, scratch=cfg["scratch"],
                scratch_on_host=not info["mounts"])
    # RLIMIT_NPROC counts per user, and per user namespace: with a uid of its own or a user
    # namespace of its own, the count is this sandbox's processes only.
    info["nproc_scope"] = "sandbox" if (info["dedicated"] or info["userns"] or cfg["mode"] == "bwrap") else "user"
    info["nproc_base"] = cfg["nproc_base"]
    return info


def _send(sock, message):
    sock.sendall((json.dumps(message) + "\n").encode())


def _receive(sock):
    chunks = []
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _user_tasks(uid):
    """Tasks (threads included) of ``uid`` now: what RLIMIT_NPROC counts when it is user-wide."""
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as f:
                fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
            if int(fields[b"Uid"].split()[0]) == uid:
                count += int(fields[b"Threads"])
        except (OSError, KeyError, ValueError, IndexError):
            continue
    return count


def _apply_rlimits(header, info):
    for name, soft in header["rlimits"]:
        res = getattr(resource, name)
        if name == "RLIMIT_NPROC":
            base = info["nproc_base"] if info["nproc_scope"] == "sandbox" else _user_tasks(os.getuid())
            soft += base
        hard = soft + 1 if name == "RLIMIT_CPU" else soft
        _, current_hard = resource.getrlimit(res)
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
            soft = min(soft, hard)
        resource.setrlimit(res, (soft, hard))


def _exit_code(exc):
    """CPython's exit status for an uncaught ``SystemExit``."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except Exception:
        pass
    return 1


def _finalize(rc):
    """What interpreter shutdown does that a program can observe, then the exit status."""
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()
        except BaseException:
            pass
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            rc = rc or 120
    return rc


def run_program(path, source):
    """Run ``source`` as ``python -I -u -X utf8 <path>`` would: a fresh ``__main__``, the same
    tracebacks (this frame is left out), the same exit codes."""
    import builtins
    import types

    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __builtins__=builtins, __cached__=None)
    sys.modules["__main__"] = main
    sys.argv[:] = [path]
    here = sys._getframe().f_code
    try:
        exec(compile(source, path, "exec", dont_inherit=True), main.__dict__)
        rc = 0
    except SystemExit as exc:
        rc = _exit_code(exc)
    except BaseException as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code is here:
            tb = tb.tb_next
        try:
            sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        except BaseException:
            pass
        if isinstance(exc, KeyboardInterrupt):
            _finalize(0)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        rc = 1
    os._exit(_finalize(rc))


def _child(go_read, header, source, info):
    """The program's process: own session, limits, no inherited descriptors but 0-2."""
    os.setsid()
    os.read(go_read, 1)  # the parent knows this pid before the program can do anything
    _close_other_fds({0, 1, 2})
    _apply_rlimits(header, info)
    path = os.path.join(info["scratch"], "main.py")
    with open(path, "wb") as f:
        f.write(source)
    run_program(path, source)


def _children():
    """Live (not zombie) processes whose parent is this supervisor, from /proc."""
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and int(fields[1]) == me and fields[0] not in (b"Z", b"X"):
            out.append(int(entry))
    return out


def _reap_descendants():
    """SIGKILL every descendant until none is left. As a child subreaper this process inherits the
    orphans of each one it kills, so repeating "kill my children, reap them" reaches the whole tree,
    whatever sessions, groups or double forks it used (bounded by ``REAP_DEADLINE_S``)."""
    import time

    # Done only when waitpid says no child exists at all: a /proc scan alone can miss a child that
    # an exiting descendant forked after the scan listed the directory.
    deadline = time.monotonic() + REAP_DEADLINE_S
    while time.monotonic() < deadline:
        for pid in _children():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                reaped, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if reaped == 0:
                break
        time.sleep(0.005)


def _reap_leftovers(child_pid, info):
    """Kill whatever the program left: every process of the sandbox's own uid when it has one
    (kill(-1) cannot reach anyone else's), else the program's session; then every remaining
    descendant, which the child-subreaper setting keeps below this process."""
    _reap_group_or_uid(child_pid, info)
    _reap_descendants()


def _reap_group_or_uid(child_pid, info):
    if info["dedicated"]:
        # One pass suffices (the kernel walks the task list under a lock forks must wait for, and
        # a task with SIGKILL pending cannot complete a fork); the repeats are cheap insurance.
        # kill(-1) reports success whenever any other process exists, so its result says nothing.
        for _ in range(3):
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                return
    else:
        try:
            os.killpg(child_pid, signal.SIGKILL)
        except OSError:
            pass


def serve(cfg):
    sock = socket.socket(fileno=CONTROL_FD)
    try:
        info = setup(cfg)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        _send(sock, {"error": f"{type(exc).__name__}: {exc}"})
        raise SystemExit(1)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    socket.send_fds(sock, [(json.dumps({"ready": info}) + "\n").encode()], [out_r, err_r])
    os.close(out_r)
    os.close(err_r)
    request = _receive(sock)
    if not request:
        return  # the pool is shutting down or the parent died: no program, nothing to report
    header_line, _, source = request.partition(b"\n")
    header = json.loads(header_line)
    _send(sock, {"accepted": True})
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            sock.close()
            os.close(go_write)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            _child(go_read, header, source, info)
        finally:
            os._exit(70)
    os.close(go_read)
    os.close(out_w)
    os.close(err_w)  # the output pipes close when the program's processes are gone
    _send(sock, {"child": pid})
    os.write(go_write, b"g")
    os.close(go_write)
    _, status, usage = os.wait4(pid, 0)
    _reap_leftovers(pid, info)
    if info["scratch_on_host"]:
        import shutil

        shutil.rmtree(info["scratch"], ignore_errors=True)
    _send(sock, {
        "status": os.waitstatus_to_exitcode(status),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_kb": usage.ru_maxrss,
    })
    os._exit(0)  # nothing left to finalise; the parent already has everything


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
