"""Run model-written programs so that they cannot change anything outside their own sandbox.

Each program runs in its own process, started by ``_launcher.py``:

* as root (the appliance's CI and the verify role): as a dedicated unprivileged uid per worker slot
  (``uid_base + slot``; RLIMIT_NPROC counts per uid, so slots cannot starve each other), with no
  supplementary groups and ``no_new_privs``;
* without root: as the calling user inside a new user namespace (the program keeps no capability);
* in new network (no interface but a down loopback), mount (every mount read-only, private tmpfs
  on /tmp, /var/tmp and /dev/shm holding a 0700 work directory) and pid namespaces (when the
  program's pid 1 ends, the kernel kills whatever it started);
* under RLIMIT_AS, RLIMIT_CPU, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE and RLIMIT_CORE=0, with a
  wall-clock timeout, a cap on captured output, and a check afterwards that nothing it started is
  left running.

`Sandbox.open` probes what this machine allows and refuses to run without namespaces unless told
(``allow_weak=True``): see docs/quality.md for what each fallback gives up.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

LAUNCHER = Path(__file__).with_name("_launcher.py")
SETUP_FAILED = 125
SETUP_PREFIX = "aimachine-sandbox:"
# Unused by Linux distributions and by systemd's dynamic and container ranges (systemd UIDS-GIDS.md).
DEFAULT_UID_BASE = 2_000_000_000
DEFAULT_GID = 65534
# Where a program may have left files when there is no private /tmp (no mount namespace).
SHARED_TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
# How often the supervisor checks whether the program exited while its pipes stay open, and how
# long it then still collects output.
POLL_S = 0.05
EXIT_GRACE_S = 0.2
SAMPLE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    # Thread pools count against RLIMIT_NPROC: keep numeric libraries single-threaded.
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


class SandboxError(RuntimeError):
    """The sandbox cannot run programs safely here; the message says why and what to change."""


@dataclass(frozen=True)
class Limits:
    """Per-program limits. CPU seconds and the wall timeout are separate: sleeping uses no CPU."""

    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_bytes: int = 2 * GIB
    nproc: int = 32
    fsize_bytes: int = 16 * MIB
    nofile: int = 64
    tmpfs_bytes: int = 64 * MIB
    output_bytes: int = 64 * KIB
    max_program_bytes: int = 1 * MIB

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.cpu_s <= 0:
            raise ValueError("sandbox timeout and CPU limit must be positive")
        if self.memory_bytes < 64 * MIB:
            raise ValueError("sandbox memory limit below 64 MiB: the Python interpreter alone needs more")
        if self.nproc < 1 or self.nofile < 16:
            raise ValueError("sandbox nproc must be >= 1 and nofile >= 16")


@dataclass(frozen=True)
class Settings:
    limits: Limits = field(default_factory=Limits)
    workers: int = 2
    uid_base: int = DEFAULT_UID_BASE
    gid: int = DEFAULT_GID
    python: str | None = None
    allow_weak: bool = False


@dataclass(frozen=True)
class Isolation:
    """What the probe established on this machine; recorded in every summary."""

    mode: str  # "root" (dedicated uids), "userns" (own uid in a user namespace) or "weak"
    net: bool
    mnt: bool
    pid: bool
    python: str
    python_version: str
    uids: tuple[int, ...]
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class RunResult:
    returncode: int | None
    timed_out: bool
    duration_s: float
    stdout: str
    stderr: str
    output_truncated: bool = False
    setup_error: str | None = None
    leftover_pids: list[int] = field(default_factory=list)
    inner_pid: int | None = None  # host pid of the program (of its namespace's pid 1)

    @property
    def signal_name(self) -> str | None:
        if self.returncode is not None and self.returncode > 128:
            try:
                return signal.Signals(self.returncode - 128).name
            except ValueError:
                return None
        return None


class _Tail:
    """Keeps the last `limit` bytes of a stream; the start of a long stream is less useful."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        excess = len(self.data) - self.limit
        if excess > 0:
            del self.data[:excess]
            self.dropped += excess

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def processes_of_uid(uid: int) -> list[int]:
    """Pids of every process (zombies included) whose owner is `uid`, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except FileNotFoundError:
                continue
    return pids


def is_running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            # Field 3 is the state; a zombie holds no resources and dies with its reaper.
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


class Sandbox:
    """Runs programs in isolation; one worker slot per concurrent program (`slot` in `run`)."""

    def __init__(self, settings: Settings, isolation: Isolation, base_dir: Path) -> None:
        self.settings = settings
        self.isolation = isolation
        self._base_dir = base_dir

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings) -> Sandbox:
        if settings.workers < 1:
            raise ValueError("sandbox workers must be >= 1")
        if not 0 <= settings.uid_base <= 2**32 - 2 - settings.workers or not 0 <= settings.gid < 2**32 - 1:
            raise ValueError("sandbox uid base / gid outside the 32-bit id range")
        root = os.geteuid() == 0
        uids: tuple[int, ...] = ()
        if root:
            uids = tuple(settings.uid_base + slot for slot in range(settings.workers))
            _check_uids_unused(uids)
        base_dir = Path(tempfile.mkdtemp(prefix="aimachine-sandbox-"))
        # Sandbox users must traverse (not list) the base to reach their own work directory.
        base_dir.chmod(0o711)
        probe = cls(settings, Isolation("weak", False, False, False, "", "", uids), base_dir)
        try:
            probe.isolation = probe._probe(root, uids)
        except BaseException:
            shutil.rmtree(base_dir, ignore_errors=True)
            raise
        return probe

    def _probe(self, root: bool, uids: tuple[int, ...]) -> Isolation:
        notes: list[str] = []
        mode = "root" if root else "userns"
        candidates = [self.settings.python] if self.settings.python else _python_candidates()
        python, version = "", ""
        errors = []
        for candidate in candidates:
            trial = Isolation(mode, False, False, False, candidate, "", uids)
            ok, detail = self._try(trial)
            if ok:
                python, version = candidate, detail
                break
            errors.append(f"{candidate}: {detail}")
        if not python and not root:
            # No user namespace at all: only the weak mode can tell whether the interpreter runs.
            for candidate in candidates:
                ok, detail = self._try(Isolation("weak", False, False, False, candidate, "", ()))
                if ok:
                    python, version, mode = candidate, detail, "weak"
                    notes.append("user namespaces unavailable: " + "; ".join(errors))
                    break
        if not python:
            raise SandboxError(
                "no Python interpreter runs inside the sandbox ("
                + "; ".join(errors)
                + "); pass --sandbox-python with an interpreter every user can execute, e.g. /usr/bin/python3"
            )
        flags = {"net": False, "mnt": False, "pid": False}
        if mode != "weak":
            full = Isolation(mode, True, True, True, python, version, uids)
            ok, detail = self._try(full)
            if ok:
                flags = {"net": True, "mnt": True, "pid": True}
            else:
                notes.append(f"all namespaces together failed: {detail}")
                for name in flags:
                    ok, detail = self._try(
                        Isolation(
                            mode,
                            **{**dict.fromkeys(flags, False), name: True},
                            python=python,
                            python_version=version,
                            uids=uids,
                        )
                    )
                    flags[name] = ok
                    if not ok:
                        notes.append(f"{name} namespace unavailable: {detail}")
        if mode == "userns" and not (flags["mnt"] and flags["pid"]):
            # Same uid as the caller: without these the program could write the caller's files or kill
            # the caller's processes. Weak mode uses no namespace (they need the user namespace here).
            mode = "weak"
            flags = dict.fromkeys(flags, False)
        if mode == "weak" and not self.settings.allow_weak:
            raise SandboxError(
                "cannot isolate programs here: not root and no usable user/mount/pid namespaces ("
                + "; ".join(notes or errors or ["no details"])
                + "). Run as root, enable unprivileged user namespaces"
                " (sysctl kernel.unprivileged_userns_clone=1), or accept a weak sandbox"
                " (rlimits and a timeout only) with --allow-weak-sandbox"
            )
        if not flags["net"]:
            notes.append("no network namespace: programs can open network connections")
        return Isolation(mode, flags["net"], flags["mnt"], flags["pid"], python, version, uids, tuple(notes))

    def _try(self, isolation: Isolation) -> tuple[bool, str]:
        saved = self.isolation
        self.isolation = isolation
        try:
            result = self.run("import sys\nprint(sys.version.split()[0])\n", slot=0)
        finally:
            self.isolation = saved
        if result.returncode == 0 and result.stdout.strip():
            return True, result.stdout.strip().splitlines()[-1]
        return False, (result.setup_error or result.stderr.strip()[-300:] or f"exit code {result.returncode}")

    # -- running --------------------------------------------------------------------------------

    def run(self, program: str, slot: int) -> RunResult:
        iso, limits = self.isolation, self.settings.limits
        if not 0 <= slot < self.settings.workers:
            raise ValueError(f"slot {slot} outside 0..{self.settings.workers - 1}")
        root_mode = iso.mode == "root"
        uid = iso.uids[slot] if root_mode else os.getuid()
        gid = self.settings.gid if root_mode else os.getgid()
        workdir: Path | None = None
        if not iso.mnt:
            workdir = Path(tempfile.mkdtemp(prefix=f"slot{slot}-", dir=self._base_dir))
            if root_mode:
                os.chown(workdir, uid, gid)
            workdir.chmod(0o700)
        status_read, status_write = os.pipe()
        config = {
            "uid": uid,
            "gid": gid,
            "drop_to_uid": root_mode,
            "userns": iso.mode == "userns",
            "net": iso.net,
            "mnt": iso.mnt,
            "pid": iso.pid,
            "workdir": str(workdir) if workdir else None,
            "tmpfs_bytes": limits.tmpfs_bytes,
            "python": iso.python,
            "env": SAMPLE_ENV,
            "max_program_bytes": limits.max_program_bytes,
            "status_fd": status_write,
            "limits": {
                "as": limits.memory_bytes,
                "cpu": limits.cpu_s,
                "nproc": self._nproc_limit(root_mode),
                "fsize": limits.fsize_bytes,
                "nofile": limits.nofile,
            },
        }
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(LAUNCHER), *launcher_args(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(status_write,),
                start_new_session=True,
                env={"PATH": SAMPLE_ENV["PATH"], "LANG": "C.UTF-8"},
            )
        finally:
            os.close(status_write)
        try:
            result = self._supervise(proc, program.encode("utf-8"), status_read, start)
        finally:
            os.close(status_read)
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
        result.leftover_pids = self._clean_up(uid, gid, root_mode, result)
        return result

    def _nproc_limit(self, root_mode: bool) -> int:
        if root_mode:
            return self.settings.limits.nproc
        # RLIMIT_NPROC counts all processes of the real uid: leave room for what the caller already runs.
        return len(processes_of_uid(os.getuid())) + self.settings.limits.nproc * self.settings.workers

    def _supervise(
        self, proc: subprocess.Popen[bytes], program: bytes, status_read: int, start: float
    ) -> RunResult:
        limits = self.settings.limits
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        try:
            proc.stdin.write(program)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the launcher failed before reading; its stderr says why
        out, err = _Tail(limits.output_bytes), _Tail(limits.output_bytes)
        status = bytearray()
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        selector.register(status_read, selectors.EVENT_READ, status)
        deadline = start + limits.timeout_s
        timed_out = False
        exited_at: float | None = None
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > EXIT_GRACE_S:
                # The program is done but something it left behind holds the pipes open.
                break
            wait = min(deadline - now, POLL_S if exited_at is None else EXIT_GRACE_S)
            for key, _ in selector.select(wait):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif isinstance(key.data, _Tail):
                    key.data.add(chunk)
                else:
                    key.data.extend(chunk)
        selector.close()
        if not timed_out:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out:
            self._stop(proc)
        duration = time.monotonic() - start
        proc.stdout.close()
        proc.stderr.close()
        stderr = err.text()
        setup_error = None
        if proc.returncode == SETUP_FAILED and SETUP_PREFIX in stderr:
            setup_error = stderr.split(SETUP_PREFIX, 1)[1].strip().splitlines()[0]
        result = RunResult(
            returncode=proc.returncode,
            timed_out=timed_out,
            duration_s=duration,
            stdout=out.text(),
            stderr=stderr,
            output_truncated=bool(out.dropped or err.dropped),
            setup_error=setup_error,
        )
        if status.strip():
            result.inner_pid = int(status.decode().split()[0])
        return result

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        if self.isolation.pid:
            # The launcher SIGKILLs the namespace's pid 1 and reaps it: no orphan is left to the host's init.
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=2.0)
                return
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def _clean_up(self, uid: int, gid: int, root_mode: bool, result: RunResult) -> list[int]:
        """Make sure nothing the program started still runs; returns pids that survived (should be none)."""
        deadline = time.monotonic() + 3.0
        inner = result.inner_pid
        if self.isolation.pid and inner is not None:
            # The kernel tears a pid namespace down shortly after its pid 1 is gone.
            while is_running(inner) and time.monotonic() < deadline:
                time.sleep(0.01)
        if not root_mode:
            return [inner] if self.isolation.pid and inner is not None and is_running(inner) else []
        while True:
            survivors = [pid for pid in processes_of_uid(uid) if is_running(pid)]
            if not survivors or time.monotonic() > deadline:
                break
            # The uid is ours alone (checked at start): kill(-1) as that uid hits only this program.
            subprocess.run(
                [self.isolation.python, "-I", "-S", "-c", "import os, signal; os.kill(-1, signal.SIGKILL)"],
                user=uid,
                group=gid,
                extra_groups=[],
                env={"PATH": SAMPLE_ENV["PATH"]},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            time.sleep(0.02)
        if not self.isolation.mnt:
            _sweep_shared_temp(uid)
        return survivors

    # -- teardown -------------------------------------------------------------------------------

    def close(self) -> None:
        shutil.rmtree(self._base_dir, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def launcher_args(config: dict[str, object]) -> list[str]:
    """The launcher's ``key=value`` arguments (see _launcher.parse_args)."""
    args = []
    for key, value in config.items():
        if isinstance(value, dict):
            prefix = "env." if key == "env" else "limit."
            args += [f"{prefix}{name}={item}" for name, item in value.items()]
        elif isinstance(value, bool):
            args.append(f"{key}={int(value)}")
        else:
            args.append(f"{key}={'' if value is None else value}")
    return args


def _python_candidates() -> list[str]:
    found = [sys.executable, "/usr/bin/python3", shutil.which("python3") or ""]
    unique: list[str] = []
    for path in found:
        if path and os.path.exists(path) and path not in unique:
            unique.append(path)
    return unique


def _check_uids_unused(uids: tuple[int, ...]) -> None:
    for uid in uids:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = None
        if name is not None:
            raise SandboxError(
                f"sandbox uid {uid} belongs to user {name!r}; choose a free range with --sandbox-uid-base"
            )
        running = [pid for pid in processes_of_uid(uid) if is_running(pid)]
        if running:
            raise SandboxError(
                f"processes {running[:5]} already run as sandbox uid {uid} (another harness running?);"
                " choose another range with --sandbox-uid-base"
            )


def _sweep_shared_temp(uid: int) -> None:
    # Without a private /tmp, a program may leave files in world-writable directories; the uid is ours.
    for top in SHARED_TEMP_DIRS:
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_uid != uid:
                continue
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
