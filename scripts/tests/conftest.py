"""Shared fixtures: a real `transformers serve` on 127.0.0.1 serving the generated tiny Qwen2 model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aimachine.tinymodel import generate

# Importing torch + transformers and loading the model takes 10-40 s on a cold 2-core machine.
STARTUP_TIMEOUT_S = 240.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: starts a real server or takes more than 5 s")


@dataclass(frozen=True)
class LiveServer:
    """A running `transformers serve`; `model` is what requests must put in their "model" field."""

    base_url: str
    model: str
    model_dir: Path
    api_key: str
    log_path: Path
    pid: int

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server's whole process group (uvicorn may have children), then reap it."""
    if proc.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_healthy(
    proc: subprocess.Popen[bytes], base_url: str, log_path: Path, what: str = "transformers serve"
) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {proc.returncode} before becoming healthy; log:\n"
                + log_path.read_text(encoding="utf-8", errors="replace")[-6000:]
            )
        try:
            response = httpx.get(f"{base_url}/health", timeout=2.0)
            if response.status_code == 200:
                return
            last_error = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as error:
            last_error = repr(error)
        time.sleep(0.5)
    raise RuntimeError(
        f"{what} not healthy at {base_url}/health after {STARTUP_TIMEOUT_S:.0f} s "
        f"(last: {last_error}); log:\n" + log_path.read_text(encoding="utf-8", errors="replace")[-6000:]
    )


def _start(command: Sequence[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        # Own session: the whole group can be killed at teardown, nothing is left behind.
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


@contextmanager
def serve_model(
    model_dir: Path, work_dir: Path, extra_args: Sequence[str] = (), continuous_batching: bool = False
) -> Iterator[LiveServer]:
    """Run `transformers serve` on `model_dir` (FORCE_MODEL) on a free 127.0.0.1 port until exit."""
    if continuous_batching:
        # Unsized, the paged KV cache takes a share of all RAM on CPU: ~30 s to allocate and zero.
        extra_args = [
            "--continuous-batching",
            "--cb-num-blocks",
            "128",
            "--cb-max-batch-tokens",
            "512",
            *extra_args,
        ]
    executable = Path(sys.executable).parent / "transformers"
    if not executable.exists():
        pytest.skip(f"{executable} not found: install the serving extra (pip install -e 'scripts[serve]')")
    log_path = work_dir / "serve.log"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        str(executable),
        "serve",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        "--default-seed",
        "0",
        *extra_args,
    ]
    proc = _start(command, log_path, env)
    try:
        _wait_healthy(proc, base_url, log_path)
        # With a forced model the server accepts exactly the FORCE_MODEL string (or no "model" at all).
        yield LiveServer(
            base_url=base_url,
            model=str(model_dir),
            model_dir=model_dir,
            api_key="not-checked-by-transformers-serve",
            log_path=log_path,
            pid=proc.pid,
        )
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def serve_tiny_model() -> Callable[..., AbstractContextManager[LiveServer]]:
    """`serve_model` itself, for tests that need a server of their own (other flags, a restart)."""
    return serve_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated tiny Qwen2 model (seed 0), one per test session; treat it as read-only."""
    return generate(tmp_path_factory.mktemp("tiny-model") / "tiny-qwen2", seed=0)


@pytest.fixture(scope="session")
def live_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`transformers serve` with its defaults: one request generates at a time, the rest queue."""
    with serve_model(tiny_model_dir, tmp_path_factory.mktemp("live-server")) as server:
        yield server


@pytest.fixture(scope="session")
def live_server_cb(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`transformers serve --continuous-batching`: concurrent requests are batched (ignores `stop`)."""
    work_dir = tmp_path_factory.mktemp("live-server-cb")
    with serve_model(tiny_model_dir, work_dir, continuous_batching=True) as server:
        yield server


EMBEDDINGS_SERVER = Path(__file__).resolve().parents[2] / "roles/llm_server/files/embeddings_server.py"


@contextmanager
def serve_embeddings(model_dir: Path, log_path: Path, *args: str) -> Iterator[str]:
    """The CPU embeddings engine (roles/llm_server/files/embeddings_server.py) on `model_dir`, on a
    free 127.0.0.1 port, with `args` as its options; yields its base URL (no /v1)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        str(EMBEDDINGS_SERVER),
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = _start([*command, *args], log_path, env)
    try:
        _wait_healthy(proc, base_url, log_path, what="embeddings_server.py")
        yield base_url
    finally:
        _stop(proc)


REPORT_DATA = Path(__file__).parent / "data" / "report"


def render_with_model(out: Path, name: str, role: str, quality_dir: Path) -> dict:
    """The recorded quick run's report in out/report, with a second model `name` (`role`): its bench
    from the recorded multi-model run, `quality_dir` as its quality results."""
    from aimachine.report.cli import render

    models = out / "models"
    shutil.copytree(REPORT_DATA / "multi/models" / name / "bench", models / name / "bench")
    shutil.copytree(quality_dir, models / name / "quality")
    meta = json.loads((REPORT_DATA / "meta.json").read_text())
    meta["models"] = [
        {"name": "tiny-qwen2", "role": "chat", "id": meta["model"]["id"]},
        {"name": name, "role": role, "id": f"aimachine/{name}"},
    ]
    quick = REPORT_DATA / "quick"
    return render(
        out / "report", meta, quick / "bench", quick / "quality", config={}, history=[], models_dir=models
    )


async def serve_app(app: Any, check: Callable[[str], Awaitable[Any]], ssl_context: Any = None) -> Any:
    """Run the aiohttp `app` on a free 127.0.0.1 port for as long as `check(base_url)` takes; its result."""
    from aiohttp import web

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # aiohttp has no public getter for it
    try:
        return await check(f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def sandbox_executor(settings: Any) -> Iterator[Any]:
    """An Executor on a sandbox opened with `settings` (skips where the machine has none), for a
    module fixture to `yield from`; closed after the module's tests."""
    from aimachine.quality.execution import Executor
    from aimachine.quality.sandbox import Sandbox, SandboxError

    try:
        box = Sandbox.open(settings)
    except SandboxError as error:
        pytest.skip(f"no sandbox on this machine: {error}")
    pool = Executor(box)
    yield pool
    pool.close()
    box.close()
