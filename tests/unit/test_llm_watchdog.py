"""The engine watchdog (roles/llm_server/files/llm_watchdog.py) against a real `transformers serve`
with the generated tiny model: it leaves a generating engine alone, counts a stopped one (SIGSTOP:
/health hangs too) and an engine whose /health answers 200 while generation hangs (issue 18,
item 2), and leaves a port nothing listens on to systemd. --dry-run says what it would restart;
molecule's default scenario has it restart the real unit."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pinned_vllm import vllm_python
from unit_render import PLAYBOOK, render_units

REPO = Path(__file__).resolve().parents[2]
WATCHDOG = REPO / "roles/llm_server/files/llm_watchdog.py"
BIN = Path(sys.executable).parent
TRANSFORMERS = BIN / "transformers"
TINY_MODEL = BIN / "aimachine-tiny-model"
EMBEDDINGS = REPO / "roles/llm_server/files/embeddings_server.py"
KEY = "w" * 40


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _watchdog(
    tmp: Path, port: int, *extra: str, model: str = "aimachine/tiny-qwen2"
) -> subprocess.CompletedProcess:
    env_file = tmp / "engine.env"
    env_file.write_text(f"# the engine's EnvironmentFile\nAIMACHINE_API_KEY={KEY}\n")
    env_file.chmod(0o600)
    done = subprocess.run(
        [
            sys.executable,
            str(WATCHDOG),
            "--url",
            f"http://127.0.0.1:{port}",
            "--model",
            model,
            "--env-file",
            str(env_file),
            "--unit",
            "aimachine-llm.service",
            "--timeout",
            "3",
            "--failures",
            "2",
            "--state",
            str(tmp / "failed-probes"),
            "--dry-run",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The key is read from the file, never printed nor passed as an argument.
    assert KEY not in done.stdout + done.stderr
    return done


def _serving(proc: subprocess.Popen, port: int, what: str):
    """Wait for the engine's /health, hand it to the tests, stop it after them (even SIGSTOPped)."""
    deadline = time.monotonic() + 240
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, f"{what} did not start"
        time.sleep(0.5)
    yield proc, port
    proc.send_signal(signal.SIGCONT)
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """transformers serve with the tiny model, loaded under its served name (a relative symlink in
    its working directory, as llm_server runs it)."""
    if not TRANSFORMERS.exists() or not TINY_MODEL.exists():
        pytest.skip("needs the controller venv's transformers and aimachine-tiny-model")
    tmp = tmp_path_factory.mktemp("engine")
    subprocess.run([str(TINY_MODEL), str(tmp / "model")], check=True, capture_output=True, timeout=300)
    (tmp / "names/aimachine").mkdir(parents=True)
    (tmp / "names/aimachine/tiny-qwen2").symlink_to(tmp / "model")
    port = _free_port()
    proc = subprocess.Popen(
        [str(TRANSFORMERS), "serve", "--host", "127.0.0.1", "--port", str(port), "aimachine/tiny-qwen2"],
        cwd=tmp / "names",
        env=dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp / "hf")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield from _serving(proc, port, "transformers serve")


@pytest.fixture(scope="module")
def embed_engine(tmp_path_factory):
    """The CPU embeddings engine (files/embeddings_server.py, as llm_server runs it for an embed
    model) with the tiny generated embedding model, served as tiny-embed."""
    if not TINY_MODEL.exists():
        pytest.skip("needs the controller venv's aimachine-tiny-model")
    tmp = tmp_path_factory.mktemp("embed")
    subprocess.run(
        [str(TINY_MODEL), "--role", "embed", str(tmp / "tiny-embed")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EMBEDDINGS),
            str(tmp / "tiny-embed"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield from _serving(proc, port, "embeddings_server.py")


class _HangingGeneration(BaseHTTPRequestHandler):
    """/health answers 200 at once; a completion never comes (the engine busy with one huge prompt)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self):
        time.sleep(10)

    def log_message(self, *args):
        pass


@pytest.mark.e2e
def test_a_generating_engine_is_left_alone(engine, tmp_path):
    _, port = engine
    done = _watchdog(tmp_path, port)
    assert "generated 1 token in" in done.stdout, done.stdout
    assert not (tmp_path / "failed-probes").exists()


@pytest.mark.e2e
def test_a_stopped_engine_is_restarted_after_two_failed_probes(engine, tmp_path):
    proc, port = engine
    proc.send_signal(signal.SIGSTOP)
    try:
        first = _watchdog(tmp_path, port)
        assert "no answer to a 1-token completion within 3 s (failed probe 1 of 2)" in first.stdout
        second = _watchdog(tmp_path, port)
        assert (
            "would restart: no answer to a 1-token completion within 3 s, 2 probes in a row" in second.stdout
        )
        assert "/health did not answer either" in second.stdout, second.stdout
        assert not (tmp_path / "failed-probes").exists()
    finally:
        proc.send_signal(signal.SIGCONT)
    # Serving again: the count starts over.
    assert "generated 1 token" in _watchdog(tmp_path, port).stdout


@pytest.mark.e2e
def test_health_200_is_not_enough(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HangingGeneration)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        _watchdog(tmp_path, port)
        done = _watchdog(tmp_path, port)
        assert "would restart" in done.stdout and "/health answered 200" in done.stdout, done.stdout
    finally:
        server.shutdown()


def test_nothing_listening_is_left_to_systemd(tmp_path):
    done = _watchdog(tmp_path, _free_port())
    assert "nothing listens on the engine's port; left to systemd" in done.stdout


@pytest.mark.e2e
def test_an_embedding_engine_is_probed_by_embedding(embed_engine, tmp_path):
    proc, port = embed_engine
    # A completion probe would take the embedder's 404 for life; the embed probe asks for a vector.
    refused = _watchdog(tmp_path, port, model="tiny-embed")
    assert "the 1-token completion was refused (HTTP 404" in refused.stdout, refused.stdout
    assert (
        "embedded 1 text in" in _watchdog(tmp_path, port, "--probe", "embeddings", model="tiny-embed").stdout
    )
    proc.send_signal(signal.SIGSTOP)
    try:
        first = _watchdog(tmp_path, port, "--probe", "embeddings", model="tiny-embed")
        assert "no answer to a 1-text embedding within 3 s (failed probe 1 of 2)" in first.stdout, (
            first.stdout
        )
        second = _watchdog(tmp_path, port, "--probe", "embeddings", model="tiny-embed")
        assert "would restart: no answer to a 1-text embedding within 3 s, 2 probes in a row" in second.stdout
    finally:
        proc.send_signal(signal.SIGCONT)


@pytest.mark.skipif(PLAYBOOK is None, reason="ansible-playbook is not installed")
def test_each_served_role_is_probed_by_the_request_it_serves(tmp_path):
    """The unit llm_server writes for a chat, an embed and a rerank model: a reranker probed with a
    completion would get vLLM's 404, which the watchdog takes for a live engine, wedged or not."""
    units = render_units(tmp_path, ["llm-watchdog", "llm-watchdog-embed", "llm-watchdog-rerank"])
    for name, kind in (("llm-watchdog", "completions"), ("llm-watchdog-embed", "embeddings"),
                       ("llm-watchdog-rerank", "rerank")):  # fmt: skip
        line = next(x for x in units[name].splitlines() if x.startswith("ExecStart="))
        argv = shlex.split(line.removeprefix("ExecStart="))
        assert (argv[argv.index("--probe") + 1] if "--probe" in argv else "completions") == kind, line


def test_every_probe_is_a_request_the_pinned_vllm_serves():
    """Each probe's path and body against the pinned vLLM's own routers and request models, and the
    list the watchdog reads from a 200 against its response models (tests/unit/vllm_probe_check.py)."""
    python = vllm_python()
    if python is None:
        pytest.skip("set AIMACHINE_VLLM_PYTHON to a Python with the pinned vLLM")
    done = subprocess.run(
        [python, str(Path(__file__).with_name("vllm_probe_check.py")), str(WATCHDOG.parent)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    routes = {"completions": "/v1/completions", "embeddings": "/v1/embeddings", "rerank": "/rerank"}
    for kind, path in routes.items():
        assert f"{kind}: POST {path} -> " in done.stdout, done.stdout
    assert done.stdout.count(": ok\n") == 3, done.stdout
