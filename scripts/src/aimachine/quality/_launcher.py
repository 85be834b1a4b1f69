"""Start one program inside the sandbox.

The harness runs this file as ``python -I -S _launcher.py key=value ...`` with the program's source
on stdin. It uses only the standard library because it runs before privileges are dropped, under
whatever interpreter started the harness; it avoids json (and the re/enum imports it pulls in)
because it starts once per program. Steps, in this order because each needs the one before:

1. read the program (stdin), then enter new namespaces (user when not root, net, mount, pid);
2. with a pid namespace, fork: the child becomes pid 1 there, so when it exits, or is killed,
   the kernel kills everything it started; this process stays outside, reaps it and passes on its
   exit status (a SIGTERM from the harness makes it SIGKILL the child first);
3. in the child: private mounts, every mount read-only, fresh tmpfs on /tmp, /var/tmp, /dev/shm,
   a new /proc; the program is written to a 0700 work directory owned by the sandbox user;
4. resource limits, then drop to the sandbox uid/gid with no supplementary groups, no new
   privileges, death signal tied to this process; then exec the interpreter on the program.

Setup failures exit with SETUP_FAILED and one ``aimachine-sandbox:`` line on stderr.
"""

from __future__ import annotations

# _signal, not signal: the enum module that signal imports costs startup time on every program.
import _signal as signal
import ctypes
import os
import resource
import select
import sys

SETUP_FAILED = 125

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# statvfs f_flag bits (they differ from the MS_* bits for relatime).
ST_RDONLY = 1
ST_NOSUID = 2
ST_NODEV = 4
ST_NOEXEC = 8
ST_NOATIME = 1024
ST_NODIRATIME = 2048
ST_RELATIME = 4096

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

WORKDIR_IN_NAMESPACE = "/tmp/sandbox"
PROGRAM_NAME = "program.py"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class SetupError(Exception):
    """The sandbox could not be set up as asked; the program is not run."""


def _fail(message: str) -> None:
    os.write(2, f"aimachine-sandbox: {message}\n".encode())
    os._exit(SETUP_FAILED)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(errno)} (errno {errno})")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _unescape_mountinfo(path: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040 ...).
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and i + 3 < len(path) and path[i + 1 : i + 4].isdigit():
            out.append(chr(int(path[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def _remount_everything_read_only() -> list[str]:
    """Make every mount of this (private) namespace read-only; returns the mounts left writable.

    A bind remount changes only this namespace's copy of the mount. The flags the mount already has
    (nosuid, nodev, noexec, atime) must be passed again, or the kernel refuses for locked mounts.
    """
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        targets = [_unescape_mountinfo(line.split()[4]) for line in handle if line.strip()]
    left_writable = []
    for target in targets:
        try:
            flags = os.statvfs(target).f_flag
        except OSError:
            continue  # an overmounted or vanished path: nothing reachable to protect
        if flags & ST_RDONLY:
            continue
        keep = MS_NOSUID
        keep |= MS_NODEV if flags & ST_NODEV else 0
        keep |= MS_NOEXEC if flags & ST_NOEXEC else 0
        keep |= MS_NODIRATIME if flags & ST_NODIRATIME else 0
        if flags & ST_NOATIME:
            keep |= MS_NOATIME
        elif flags & ST_RELATIME:
            keep |= MS_RELATIME
        else:
            keep |= MS_STRICTATIME
        try:
            _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | keep)
        except SetupError:
            left_writable.append(target)
    return left_writable


def _is_pseudo(target: str) -> bool:
    # Kernel interfaces whose files the sandbox user cannot write anyway; containers often lock them.
    return any(target == top or target.startswith(top + "/") for top in ("/proc", "/sys", "/dev"))


def _setup_filesystem(config: dict, program: bytes) -> str:
    uid, gid = config["uid"], config["gid"]
    if config["mnt"]:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        left_writable = [target for target in _remount_everything_read_only() if not _is_pseudo(target)]
        if left_writable:
            # A writable mount would let the program change the host: better not to run it.
            raise SetupError(f"could not make read-only: {', '.join(left_writable[:5])}")
        size = int(config["tmpfs_bytes"])
        for target in ("/tmp", "/var/tmp", "/dev/shm"):
            if os.path.isdir(target):
                _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
        if config["pid"]:
            # Some containers forbid a new procfs; the old one only shows host pids, harmless.
            try:  # noqa: SIM105 - contextlib would cost startup time on every program
                _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            except SetupError:
                pass
        workdir = WORKDIR_IN_NAMESPACE
        os.mkdir(workdir, 0o700)
    else:
        workdir = config["workdir"]
    path = os.path.join(workdir, PROGRAM_NAME)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, program)
    finally:
        os.close(fd)
    if config["drop_to_uid"]:
        os.chown(workdir, uid, gid)
        os.chown(path, uid, gid)
    os.chmod(workdir, 0o700)
    return workdir


def _set_limits(limits: dict) -> None:
    pairs = {
        resource.RLIMIT_AS: limits["as"],
        resource.RLIMIT_CPU: limits["cpu"],
        resource.RLIMIT_NPROC: limits["nproc"],
        resource.RLIMIT_FSIZE: limits["fsize"],
        resource.RLIMIT_NOFILE: limits["nofile"],
        resource.RLIMIT_CORE: 0,
    }
    for which, value in pairs.items():
        soft = int(value)
        # The soft CPU limit sends SIGXCPU, the hard one a second later SIGKILL.
        hard = soft + 1 if which == resource.RLIMIT_CPU else soft
        resource.setrlimit(which, (soft, hard))


def _parent_alive(watch_fd: int) -> bool:
    # The launcher holds the write end open for its whole life: EOF here means it is gone.
    readable, _, _ = select.select([watch_fd], [], [], 0)
    return not readable


def _become_sandbox_user(config: dict, watch_fd: int | None) -> None:
    if config["drop_to_uid"]:
        os.setgroups([])
        os.setgid(config["gid"])
        os.setuid(config["uid"])
        if os.getuid() != config["uid"] or os.geteuid() != config["uid"] or os.getegid() != config["gid"]:
            raise SetupError("uid/gid switch did not take")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if watch_fd is not None:
        # Changing credentials clears the death signal, so it is set (again) after the switch.
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
        if not _parent_alive(watch_fd):
            os._exit(SETUP_FAILED)
        os.close(watch_fd)


def _exec_program(config: dict, workdir: str) -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.chdir(workdir)
    env = dict(config["env"])
    env.update({"HOME": workdir, "TMPDIR": workdir})
    python = config["python"]
    os.execve(python, [python, "-I", "-B", os.path.join(workdir, PROGRAM_NAME)], env)


def _write_id_maps(uid: int, gid: int) -> None:
    # Map only our own ids: inside, the program keeps our uid and so loses every capability at exec.
    with open("/proc/self/setgroups", "w", encoding="ascii") as handle:
        handle.write("deny")
    with open("/proc/self/uid_map", "w", encoding="ascii") as handle:
        handle.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w", encoding="ascii") as handle:
        handle.write(f"{gid} {gid} 1")


def _child(config: dict, program: bytes, watch_fd: int | None) -> None:
    try:
        if watch_fd is not None:
            _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
            if not _parent_alive(watch_fd):
                os._exit(SETUP_FAILED)
        workdir = _setup_filesystem(config, program)
        _set_limits(config["limits"])
        _become_sandbox_user(config, watch_fd)
        _exec_program(config, workdir)
    except (OSError, SetupError, ValueError) as error:
        _fail(f"{type(error).__name__}: {error}")


INT_KEYS = {"uid", "gid", "tmpfs_bytes", "max_program_bytes", "status_fd"}
BOOL_KEYS = {"drop_to_uid", "userns", "net", "mnt", "pid"}


def parse_args(argv: list[str]) -> dict:
    """``key=value`` arguments; ``env.NAME=`` and ``limit.NAME=`` entries fill the env and limits."""
    config: dict = {"env": {}, "limits": {}, "workdir": None, "status_fd": None}
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.startswith("env."):
            config["env"][key[4:]] = value
        elif key.startswith("limit."):
            config["limits"][key[6:]] = int(value)
        elif key in INT_KEYS:
            config[key] = int(value) if value else None
        elif key in BOOL_KEYS:
            config[key] = value == "1"
        else:
            config[key] = value or None
    return config


def _die_with_parent(parent: int) -> None:
    # If the harness dies (even by SIGKILL), so does this launcher, and with it the program.
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    if os.getppid() != parent:
        os._exit(SETUP_FAILED)


def main() -> None:
    harness = os.getppid()
    _die_with_parent(harness)
    config = parse_args(sys.argv[1:])
    program = sys.stdin.buffer.read(int(config["max_program_bytes"]) + 1)
    if len(program) > int(config["max_program_bytes"]):
        _fail("program too large")
    status_fd = config.get("status_fd")
    flags = (CLONE_NEWNET if config["net"] else 0) | (CLONE_NEWNS if config["mnt"] else 0)
    flags |= CLONE_NEWPID if config["pid"] else 0
    try:
        if config["userns"]:
            uid, gid = os.getuid(), os.getgid()
            _check(_libc.unshare(CLONE_NEWUSER | flags), "unshare(user)")
            _write_id_maps(uid, gid)
            _die_with_parent(harness)  # new credentials clear the death signal
        elif flags:
            _check(_libc.unshare(flags), "unshare")
    except (OSError, SetupError) as error:
        _fail(f"{type(error).__name__}: {error}")

    if not config["pid"]:
        if status_fd is not None:
            os.write(status_fd, f"{os.getpid()}\n".encode())
            os.close(status_fd)
        _child(config, program, None)
        return

    watch_read, watch_write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(watch_write)
        if status_fd is not None:
            os.close(status_fd)
        _child(config, program, watch_read)
        return
    os.close(watch_read)
    if status_fd is not None:
        os.write(status_fd, f"{child}\n".encode())
        os.close(status_fd)

    def _stop_child(_signum: int, _frame: object) -> None:
        # From outside the namespace SIGKILL always reaches its pid 1, which takes everything with it.
        try:  # noqa: SIM105 - see above: no contextlib here
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, _stop_child)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
