"""Run model-written programs so that they cannot change, read or reach anything outside.

Isolation comes from bubblewrap (``bwrap``, Debian's ``bubblewrap`` package, what Flatpak uses):

* every namespace: user, mount, IPC, pid, network, UTS and cgroup (``--unshare-*``); a new session
  (``--new-session``: no TIOCSTI into the harness's terminal), killed with the harness
  (``--die-with-parent``; the launcher's death signal covers bwrap itself), no nested user
  namespaces (``--disable-userns``);
* a minimal read-only root: the interpreter's binary, its standard library (site-packages hidden)
  and the system libraries it loads; a private /dev (null, zero, random ...), private tmpfs on
  /tmp, /dev/shm and the work directory; no /proc, /etc, /run, /var, home or any host socket;
* as root: each worker slot runs as its own unprivileged uid (``uid_base + slot``) that owns
  nothing on the host, with no supplementary groups, and bwrap runs unprivileged as that uid;
* with a sandbox account (``Settings.user``, ``--sandbox-user``, the verify timer's
  ``aimachine-sandbox``): slot i runs as the account's uid + i and its group, as root or as a
  caller holding only CAP_SETUID and CAP_SETGID (the verify unit's ambient capabilities);
  ``setpriv`` switches uid, gid and groups and clears the inheritable and ambient capabilities
  before bwrap starts, so the program keeps no capability and no uid that owns a host file;
* otherwise, without root, bwrap maps the caller's uid (the host uid is the caller's: recorded as
  such, and the run counts as partial isolation);
* RLIMIT_AS, RLIMIT_CPU, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE and RLIMIT_CORE=0 (set by
  ``_launcher.py`` before bwrap starts), a wall-clock timeout, a cap on captured output and a
  check afterwards that nothing it started is left running.

`Sandbox.open` probes what this machine allows and records it (`Isolation`): which tool, which
namespaces, which uid. Without bwrap, or where it cannot create namespaces (some containers),
programs run with the limits only and the isolation is recorded as partial: the report flags it
and a gate fails unless the run allowed it. Without root and without bwrap nothing separates a
program from the caller's files: that needs ``allow_weak=True``. docs/quality.md has the threat
model and what each layer stops.
"""

from __future__ import annotations

import contextlib
import json
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
LAUNCHER_SOURCE = LAUNCHER.read_text(encoding="utf-8")
PRLIMIT = shutil.which("prlimit") or ""
SETPRIV = shutil.which("setpriv") or ""
CAP_SETGID = 6
CAP_SETUID = 7
SETUP_FAILED = 125
SETUP_PREFIX = "bwrap:"
# Unused by Linux distributions and by systemd's dynamic and container ranges (systemd UIDS-GIDS.md).
DEFAULT_UID_BASE = 2_000_000_000
DEFAULT_GID = 65534
# The uid and gid the program sees inside its user namespace.
INNER_UID = 1000
INNER_GID = 1000
NAMESPACES = ("user", "mnt", "ipc", "pid", "net", "uts", "cgroup")
WORKDIR = "/sandbox"
INPUT_DIR = "/sandbox/in"
PROGRAM_NAME = "program.py"
INPUT_NAME = "calls.jsonl"
# Where a program may have left files when there is no private /tmp (no bwrap).
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
INTERPRETER_PROBE = (
    "import json, os, site, sys, sysconfig\n"
    "paths = sysconfig.get_paths()\n"
    "print(json.dumps({'executable': os.path.realpath(sys.executable), 'version': sys.version.split()[0],"
    " 'stdlib': [paths['stdlib'], paths['platstdlib']], 'prefix': sys.base_prefix,"
    " 'multiarch': sysconfig.get_config_var('MULTIARCH') or '',"
    " 'libdir': sysconfig.get_config_var('LIBDIR') or '',"
    " 'site': [*site.getsitepackages(), paths['purelib'], paths['platlib']]}))\n"
)


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
    answer_bytes: int = 16 * MIB

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
    # A sandbox account (name): its uid is slot 0's (slot i: uid + i), its group the programs' gid.
    user: str | None = None
    # Tests only: pretend bwrap is missing (the fallback path) or use another binary.
    bwrap: str | None = None


@dataclass(frozen=True)
class Isolation:
    """What the probe established on this machine; recorded in every summary and report."""

    mode: str  # "root" (a dedicated uid per slot) or "user" (the caller's uid)
    tool: str  # "bubblewrap <version>" or "none"
    namespaces: tuple[str, ...]  # those in force, from NAMESPACES
    host_uid: str  # "dedicated" (owns nothing on the host) or "caller"
    python: str
    python_version: str
    uids: tuple[int, ...]
    root_fs: str = "minimal"  # "minimal" (interpreter + stdlib, read-only) or "host" (no bwrap)
    notes: tuple[str, ...] = ()
    account: str = ""  # the sandbox account whose uid the programs run as, if one was named

    @property
    def bwrap(self) -> bool:
        return self.tool.startswith("bubblewrap")

    @property
    def missing(self) -> list[str]:
        """What full isolation has that this one lacks (empty: full)."""
        gaps = [f"{name} namespace" for name in NAMESPACES if name not in self.namespaces]
        if not self.bwrap:
            gaps.insert(0, "bubblewrap")
        if self.root_fs != "minimal":
            gaps.append("minimal read-only root")
        if self.host_uid != "dedicated":
            gaps.append("dedicated uid (runs as the caller's uid)")
        return gaps

    @property
    def full(self) -> bool:
        return not self.missing

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data.update(full=self.full, missing=self.missing)
        return data


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
    inner_pid: int | None = None  # host pid of the program's namespace's pid 1 (bwrap's child)
    answers: bytes = b""  # what the program wrote to its answer pipe
    answers_truncated: bool = False

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


class _Head:
    """Keeps the first `limit` bytes (answers: a truncated line at the end is simply dropped)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        self.data += chunk[: max(room, 0)]
        self.dropped += max(len(chunk) - max(room, 0), 0)


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


def bwrap_version(binary: str) -> str | None:
    try:
        command = without_capabilities([binary, "--version"])
        out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    words = out.stdout.split()
    return words[-1] if out.returncode == 0 and words else None


class Sandbox:
    """Runs programs in isolation; one worker slot per concurrent program (`slot` in `run`)."""

    def __init__(self, settings: Settings, isolation: Isolation, base_dir: Path) -> None:
        self.settings = settings
        self.isolation = isolation
        self._base_dir = base_dir
        self._binds: list[str] = []
        self._bwrap = ""
        self._gid = settings.gid

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings) -> Sandbox:
        if settings.workers < 1:
            raise ValueError("sandbox workers must be >= 1")
        if not 0 <= settings.uid_base <= 2**32 - 2 - settings.workers or not 0 <= settings.gid < 2**32 - 1:
            raise ValueError("sandbox uid base / gid outside the 32-bit id range")
        root = os.geteuid() == 0
        uid_base, gid, account = settings.uid_base, settings.gid, settings.user or ""
        if account:
            uid_base, gid = _account(account, settings.workers)
            if not root and not can_switch_uid():
                raise SandboxError(
                    f"--sandbox-user {account}: switching to it needs root or CAP_SETUID and CAP_SETGID"
                    " (the verify unit's AmbientCapabilities); this process has neither"
                )
            if not root and not SETPRIV:
                raise SandboxError("--sandbox-user without root needs setpriv (util-linux)")
        dedicated = root or bool(account)
        uids: tuple[int, ...] = ()
        if dedicated:
            uids = tuple(uid_base + slot for slot in range(settings.workers))
            _check_uids_unused(uids[1:] if account else uids)
            _check_uids_idle(uids[:1] if account else ())
        base_dir = Path(tempfile.mkdtemp(prefix="aimachine-sandbox-"))
        # Sandbox users must traverse (not list) the base to reach their own work directory.
        base_dir.chmod(0o711)
        mode = "root" if root else "user"
        host_uid = "dedicated" if dedicated else "caller"
        iso = Isolation(mode, "none", (), host_uid, "", "", uids, "host", account=account)
        box = cls(settings, iso, base_dir)
        box._gid = gid
        try:
            box.isolation = box._probe(mode, host_uid, uids)
        except BaseException:
            shutil.rmtree(base_dir, ignore_errors=True)
            raise
        return box

    def _probe(self, mode: str, host_uid: str, uids: tuple[int, ...]) -> Isolation:
        notes: list[str] = []
        account = self.isolation.account
        python, info = self._interpreter(notes)
        version = str(info["version"])
        binary = self.settings.bwrap if self.settings.bwrap is not None else (shutil.which("bwrap") or "")
        tool_version = bwrap_version(binary) if binary else None
        if tool_version:
            self._bwrap = binary
            self._binds = _bind_args(info)
            tool = f"bubblewrap {tool_version}"
            wanted = list(NAMESPACES)
            ok, detail = self._try(
                Isolation(mode, tool, tuple(wanted), host_uid, python, version, uids, account=account)
            )
            if not ok:
                notes.append(f"all namespaces together failed: {detail}")
                # Without a user namespace an unprivileged bwrap can do nothing; the others may be optional.
                for name in ("cgroup", "uts", "ipc", "net", "pid"):
                    trial = [n for n in wanted if n != name]
                    ok, detail = self._try(
                        Isolation(mode, tool, tuple(trial), host_uid, python, version, uids, account=account)
                    )
                    if ok:
                        notes.append(f"{name} namespace unavailable")
                        wanted = trial
                        break
            if ok:
                return Isolation(
                    mode,
                    tool,
                    tuple(wanted),
                    host_uid,
                    python,
                    version,
                    uids,
                    "minimal",
                    tuple(notes),
                    account,
                )
            notes.append(f"bubblewrap cannot create namespaces here: {detail}")
        else:
            notes.append("bubblewrap (bwrap) not found: install the bubblewrap package")
        self._bwrap = ""
        weak = Isolation(mode, "none", (), host_uid, python, version, uids, "host", tuple(notes), account)
        if host_uid == "caller" and not self.settings.allow_weak:
            raise SandboxError(
                "cannot isolate programs here: not root and bubblewrap cannot run ("
                + "; ".join(notes)
                + "). Install bubblewrap and allow unprivileged user namespaces"
                " (sysctl kernel.unprivileged_userns_clone=1), run as root, or accept a weak sandbox"
                " (rlimits and a timeout only, as your own uid) with --allow-weak-sandbox"
            )
        ok, detail = self._try(weak)
        if not ok:
            raise SandboxError(f"the interpreter {python} does not run as the sandbox user: {detail}")
        return weak

    def _interpreter(self, notes: list[str]) -> tuple[str, dict[str, object]]:
        candidates = [self.settings.python] if self.settings.python else _python_candidates()
        errors = []
        for candidate in candidates:
            try:
                out = subprocess.run(
                    without_capabilities([candidate, "-I", "-c", INTERPRETER_PROBE]),
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                )
                info = json.loads(out.stdout)
            except (OSError, subprocess.SubprocessError, ValueError) as error:
                errors.append(f"{candidate}: {error}")
                continue
            if _under_home(str(info["executable"])) and not self.settings.python:
                errors.append(f"{candidate}: lies in a home directory, which the sandbox hides")
                continue
            return str(info["executable"]), info
        raise SandboxError(
            "no usable Python interpreter for the sandbox ("
            + "; ".join(errors)
            + "); pass --sandbox-python with a system interpreter, e.g. /usr/bin/python3"
        )

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

    def run(self, program: str, slot: int, inputs: str = "") -> RunResult:
        """Run `program`; `inputs` is the text of the input file it gets as ``sys.argv[1]``."""
        iso, limits = self.isolation, self.settings.limits
        if not 0 <= slot < self.settings.workers:
            raise ValueError(f"slot {slot} outside 0..{self.settings.workers - 1}")
        source = program.encode("utf-8")
        if len(source) > limits.max_program_bytes:
            return RunResult(None, False, 0.0, "", "", setup_error="program too large")
        dedicated = iso.host_uid == "dedicated"
        uid = iso.uids[slot] if dedicated else os.getuid()
        gid = self._gid if dedicated else os.getgid()
        rundir: Path | None = None
        data_fds: list[int] = []
        # Inherited fds keep their numbers through the launcher and bwrap: the program gets the
        # answer pipe's number as its second argument.
        answer_read, answer_write = os.pipe()
        info_read, info_write = os.pipe()
        if iso.bwrap:
            # The program and its inputs go in as memory files that bwrap copies into the sandbox:
            # nothing on the host needs to be readable by (or chowned to) the sandbox's uid.
            data_fds = [_memfd("program", source), _memfd("inputs", inputs.encode("utf-8"))]
            inner = [
                iso.python,
                "-I",
                "-B",
                f"{INPUT_DIR}/{PROGRAM_NAME}",
                f"{INPUT_DIR}/{INPUT_NAME}",
                str(answer_write),
            ]
            command = self._bwrap_command(iso, data_fds, info_write, inner)
        else:
            rundir = self._weak_rundir(slot, source, inputs, (uid, gid) if dedicated else None)
            command = [
                iso.python,
                "-I",
                "-B",
                str(rundir / PROGRAM_NAME),
                str(rundir / INPUT_NAME),
                str(answer_write),
            ]
        limits_values = (
            limits.memory_bytes,
            limits.cpu_s,
            self._nproc_limit(dedicated),
            limits.fsize_bytes,
            limits.nofile,
        )
        if PRLIMIT:
            # util-linux's prlimit: a C binary, so no interpreter start per program. The soft CPU limit
            # sends SIGXCPU, the hard one a second later SIGKILL.
            address_space, cpu, nproc, fsize, nofile = limits_values
            launcher = [
                PRLIMIT,
                f"--as={address_space}",
                f"--cpu={cpu}:{cpu + 1}",
                f"--nproc={nproc}",
                f"--fsize={fsize}",
                f"--nofile={nofile}",
                "--core=0",
                "--",
                *command,
            ]
        else:
            launcher = [
                iso.python,
                "-I",
                "-S",
                "-c",
                LAUNCHER_SOURCE,
                *map(str, limits_values),
                "--",
                *command,
            ]
        env = {**SAMPLE_ENV, "HOME": WORKDIR if iso.bwrap else str(rundir), "TMPDIR": "/tmp"}
        switch: dict[str, object] = {}
        if dedicated:
            if SETPRIV:
                launcher = [*_switch_prefix(uid, gid), *launcher]
            else:  # root without util-linux's setpriv: the kernel drops root's capabilities on setuid
                switch = {"user": uid, "group": gid, "extra_groups": []}
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                launcher,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(answer_write, info_write, *data_fds),
                start_new_session=True,
                cwd="/" if iso.bwrap else str(rundir),
                env=env,
                **switch,  # type: ignore[arg-type]
            )
        finally:
            for fd in (answer_write, info_write, *data_fds):
                os.close(fd)
        try:
            result = self._supervise(proc, answer_read, info_read, start)
        finally:
            os.close(answer_read)
            os.close(info_read)
            if rundir is not None:
                shutil.rmtree(rundir, ignore_errors=True)
        result.leftover_pids = self._clean_up(uid, gid, dedicated, result)
        return result

    def _weak_rundir(self, slot: int, source: bytes, inputs: str, owner: tuple[int, int] | None) -> Path:
        """Without bwrap the program reads its files from the host: a private directory of its uid's."""
        rundir = Path(tempfile.mkdtemp(prefix=f"slot{slot}-", dir=self._base_dir))
        (rundir / PROGRAM_NAME).write_bytes(source)
        (rundir / INPUT_NAME).write_text(inputs, encoding="utf-8")
        for path in (rundir / PROGRAM_NAME, rundir / INPUT_NAME):
            path.chmod(0o600)
        if owner is not None:
            try:
                for path in (rundir, rundir / PROGRAM_NAME, rundir / INPUT_NAME):
                    os.chown(path, *owner)
            except PermissionError:
                # CAP_SETUID without CAP_CHOWN: readable by all, in a directory only its path reaches.
                for path in (rundir / PROGRAM_NAME, rundir / INPUT_NAME):
                    path.chmod(0o444)
                rundir.chmod(0o711)
                return rundir
        rundir.chmod(0o700)
        return rundir

    def _bwrap_command(
        self, iso: Isolation, data_fds: list[int], info_fd: int, inner: list[str]
    ) -> list[str]:
        size = str(self.settings.limits.tmpfs_bytes)
        args = [self._bwrap]
        args += [f"--unshare-{name}" for name in iso.namespaces if name != "mnt"]
        # --as-pid-1: the program is its namespace's pid 1, so when it ends the kernel kills whatever it
        # started; bwrap's own reaper would be left a zombie for the host's init (bwrap exits first).
        args += ["--die-with-parent", "--new-session", "--info-fd", str(info_fd), "--clearenv"]
        args += ["--as-pid-1"] if "pid" in iso.namespaces else []
        if "user" in iso.namespaces:
            args += ["--uid", str(INNER_UID), "--gid", str(INNER_GID), "--disable-userns"]
        args += self._binds
        args += ["--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--size", size, "--tmpfs", "/tmp"]
        program_fd, inputs_fd = data_fds
        args += ["--size", size, "--tmpfs", WORKDIR, "--dir", INPUT_DIR]
        args += ["--ro-bind-data", str(program_fd), f"{INPUT_DIR}/{PROGRAM_NAME}"]
        args += ["--ro-bind-data", str(inputs_fd), f"{INPUT_DIR}/{INPUT_NAME}", "--chdir", WORKDIR]
        for name, value in {**SAMPLE_ENV, "HOME": WORKDIR, "TMPDIR": "/tmp"}.items():
            args += ["--setenv", name, value]
        args += ["--remount-ro", "/", "--", *inner]
        return args

    def _nproc_limit(self, dedicated: bool) -> int:
        if dedicated:
            return self.settings.limits.nproc
        # RLIMIT_NPROC counts all processes of the real uid: leave room for what the caller already runs.
        return len(processes_of_uid(os.getuid())) + self.settings.limits.nproc * self.settings.workers

    def _supervise(
        self, proc: subprocess.Popen[bytes], answer_read: int, info_read: int, start: float
    ) -> RunResult:
        limits = self.settings.limits
        assert proc.stdout is not None and proc.stderr is not None
        out, err = _Tail(limits.output_bytes), _Tail(limits.output_bytes)
        answers, info = _Head(limits.answer_bytes), _Head(64 * KIB)
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        selector.register(answer_read, selectors.EVENT_READ, answers)
        selector.register(info_read, selectors.EVENT_READ, info)
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
                else:
                    key.data.add(chunk)
        selector.close()
        if not timed_out:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        inner_pid = _child_pid(bytes(info.data), proc.pid)
        if timed_out:
            self._stop(proc, inner_pid)
        duration = time.monotonic() - start
        proc.stdout.close()
        proc.stderr.close()
        stderr = err.text()
        setup_error = None
        if proc.returncode in (1, SETUP_FAILED) and stderr.startswith(SETUP_PREFIX):
            setup_error = stderr.strip().splitlines()[0]
        result = RunResult(
            returncode=proc.returncode,
            timed_out=timed_out,
            duration_s=duration,
            stdout=out.text(),
            stderr=stderr,
            output_truncated=bool(out.dropped or err.dropped),
            setup_error=setup_error,
            answers=bytes(answers.data),
            answers_truncated=bool(answers.dropped),
        )
        result.inner_pid = inner_pid
        return result

    def _stop(self, proc: subprocess.Popen[bytes], inner_pid: int | None) -> None:
        # Kill the namespace's pid 1 first (that takes every process in it): bwrap, still alive, reaps it
        # and exits, so no zombie is left to the host's init. Then bwrap itself, if it is still there.
        if inner_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(inner_pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2.0)
                return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def _clean_up(self, uid: int, gid: int, dedicated: bool, result: RunResult) -> list[int]:
        """Make sure nothing the program started still runs; returns pids that survived (should be none)."""
        deadline = time.monotonic() + 3.0
        inner = result.inner_pid
        if inner is not None and "pid" in self.isolation.namespaces:
            # The kernel tears a pid namespace down shortly after its pid 1 is gone.
            while is_running(inner) and time.monotonic() < deadline:
                time.sleep(0.01)
        if not dedicated:
            return [inner] if inner is not None and is_running(inner) else []
        while True:
            survivors = [pid for pid in processes_of_uid(uid) if is_running(pid)]
            if not survivors or time.monotonic() > deadline:
                break
            # The uid is ours alone (checked at start): kill(-1) as that uid hits only this program.
            kill = [self.isolation.python, "-I", "-S", "-c", "import os, signal; os.kill(-1, signal.SIGKILL)"]
            subprocess.run(
                [*_switch_prefix(uid, gid), *kill] if SETPRIV else kill,
                **({} if SETPRIV else {"user": uid, "group": gid, "extra_groups": []}),  # type: ignore[arg-type]
                env={"PATH": SAMPLE_ENV["PATH"]},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            time.sleep(0.02)
        if not self.isolation.bwrap:
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


def _child_pid(info: bytes, bwrap_pid: int) -> int | None:
    """bwrap's child (the pid namespace's pid 1) from its --info-fd JSON, if it is bwrap's child."""
    try:
        pid = int(json.loads(info.decode().split("}", 1)[0] + "}")["child-pid"])
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            parent = int(handle.read().rsplit(")", 1)[1].split()[1])
    except (ValueError, KeyError, TypeError, IndexError, OSError):
        return None
    # Only a pid whose parent is the bwrap we started: nothing the program writes can aim the kill.
    return pid if parent == bwrap_pid else None


def _under_home(path: str) -> bool:
    return path.startswith(("/root/", "/home/"))


def _bind_args(info: dict[str, object]) -> list[str]:
    """bwrap arguments for a read-only root with the interpreter, its stdlib and system libraries only."""
    args: list[str] = []
    # The merged-/usr top-level links (/lib -> usr/lib ...), as on the host.
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{top}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path) and top.startswith("lib"):
            args += ["--ro-bind", path, path]
    executable = str(info["executable"])
    dirs = {executable}
    dirs.update(str(p) for p in info["stdlib"])  # type: ignore[attr-defined]
    multiarch = str(info["multiarch"])
    for libdir in ("/usr/lib64", f"/usr/lib/{multiarch}" if multiarch else "", str(info["libdir"])):
        if libdir and os.path.isdir(libdir):
            dirs.add(libdir)
    # The shortest set: a directory inside another bound one adds nothing.
    chosen = sorted(d for d in dirs if os.path.exists(d))
    kept: list[str] = []
    for path in chosen:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    for path in kept:
        args += ["--ro-bind", path, path]
    # site-packages / dist-packages under a bound directory: hidden (third-party code, data sets).
    for site_dir in sorted({str(p) for p in info["site"]}):  # type: ignore[attr-defined]
        if os.path.isdir(site_dir) and any(site_dir.startswith(k.rstrip("/") + "/") for k in kept):
            args += ["--tmpfs", site_dir, "--remount-ro", site_dir]
    return args


def _python_candidates() -> list[str]:
    # The system interpreter first: its stdlib lies under /usr, which the sandbox shows read-only.
    found = ["/usr/bin/python3", sys.executable, shutil.which("python3") or ""]
    unique: list[str] = []
    for path in found:
        if path and os.path.exists(path) and path not in unique:
            unique.append(path)
    return unique


def can_switch_uid() -> bool:
    """Whether this process holds CAP_SETUID and CAP_SETGID in its effective set."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            line = next(x for x in handle if x.startswith("CapEff:"))
    except (OSError, StopIteration):
        return False
    effective = int(line.split()[1], 16)
    return all(effective >> cap & 1 for cap in (CAP_SETUID, CAP_SETGID))


def without_capabilities(command: list[str]) -> list[str]:
    """`command` so that it starts with no capability: as the verify unit's user the harness holds
    CAP_SETUID and CAP_SETGID as ambient capabilities, which every program it starts would inherit;
    only the setpriv that switches to a sandbox uid needs them. Root keeps its own (its children
    are root either way)."""
    if os.geteuid() == 0 or not SETPRIV:
        return command
    return [SETPRIV, "--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs", "--", *command]


def _switch_prefix(uid: int, gid: int) -> list[str]:
    """setpriv to `uid`/`gid` with no groups and no capability left to inherit or keep as ambient."""
    return [
        SETPRIV,
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--ambient-caps=-all",
        "--pdeathsig=SIGKILL",
        "--",
    ]


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(f"aimachine-{name}", 0)  # not close-on-exec: bwrap reads it
    try:
        _write_all(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _account(name: str, workers: int) -> tuple[int, int]:
    """The sandbox account's uid and gid; it must be nobody's own: not root, not the caller."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise SandboxError(f"sandbox user {name!r} does not exist (the llm_verify role creates it)") from None
    if entry.pw_uid == 0 or entry.pw_uid == os.getuid() or entry.pw_gid == 0:
        raise SandboxError(f"sandbox user {name!r} is root or this process's own user: it must own nothing")
    if entry.pw_uid + workers > 2**32 - 2:
        raise SandboxError(f"sandbox user {name!r}: uid + workers outside the 32-bit id range")
    return entry.pw_uid, entry.pw_gid


def _check_uids_idle(uids: tuple[int, ...]) -> None:
    for uid in uids:
        running = [pid for pid in processes_of_uid(uid) if is_running(pid)]
        if running:
            raise SandboxError(
                f"processes {running[:5]} already run as sandbox uid {uid} (another harness running?)"
            )


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
