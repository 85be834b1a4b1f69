"""The client files the report wrote (reports/<host>/latest/clients/), each used as its client would:
the base URL, model names, CA and key they give, a real request through the front door.

Runs on the controller (the client's side). Chat, autocomplete and embeddings where the scenario
serves them (the default one: three tiny models); a one-model scenario (Debian 13) checks the chat
files and skips the rest. Codex's /v1/responses is served by the CPU engine too; Claude Code's
/v1/messages only by vLLM: here its env file's URL, token and model are checked on /v1/models
(docs/clients.md).
"""

import http.client
import json
import os
import ssl
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

FILES = (
    ".aider.conf.yml",
    ".aider.model.metadata.json",
    ".aider.model.settings.yml",
    "claude-code-env.sh",
    "cline-settings.json",
    "codex-config.toml",
    "continue-config.yaml",
    "openai-env.sh",
)


@pytest.fixture(scope="module")
def clients(host) -> Path:
    name = host.backend.get_hostname()
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "reports" / name / "latest" / "clients"
    assert path.is_dir(), f"no client files at {path}"
    return path


@pytest.fixture(scope="module")
def report_clients(clients) -> dict:
    return json.loads((clients.parent / "report.json").read_text(encoding="utf-8"))["clients"]


@pytest.fixture(scope="module")
def env(clients, report_clients) -> dict:
    """The environment after `. openai-env.sh` in bash, as a user's shell gets it."""
    if report_clients["via"] != "front door":
        pytest.skip(f"no front door: the files point at the host's loopback ({report_clients['base_url']})")
    return _source(clients / "openai-env.sh")


@pytest.fixture(scope="module")
def secrets(host, report_clients) -> Path:
    """The controller's copy of this host's key and CA (where the files say they are)."""
    path = Path(report_clients["key_file"]).parent
    base = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets"
    assert path.parent == base and (path / "api_key").exists(), path
    return path


# Published host -> the address a LAN client uses (see _door_address).
_ADDRESS: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def _door_address(host, report_clients):
    """The container's default address is on molecule's second network, which the allowlist drops
    by design (test_frontdoor.py); a LAN client uses its bridge address, which the certificate also
    names. Only the address a request connects to changes; the files are used as delivered."""
    published = urlsplit(report_clients["base_url"]).hostname
    if published.startswith("198.18."):
        _ADDRESS[published] = next(
            a for a in host.check_output("hostname -I").split() if a.startswith("172.")
        )
    yield
    _ADDRESS.clear()


def _source(script: Path) -> dict:
    done = subprocess.run(
        ["bash", "-c", '. "$1" && env -0', "source", str(script)],
        capture_output=True,
        env={"PATH": os.environ["PATH"]},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)


def _request(base_url, ca, token, method, path, *, body=None):
    """One HTTPS request to base_url + path, the CA and the Bearer token given (no other trust)."""
    url = urlsplit(base_url)
    context = ssl.create_default_context(cafile=ca)
    address = _ADDRESS.get(url.hostname, url.hostname)
    conn = http.client.HTTPSConnection(address, url.port, context=context, timeout=120)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    try:
        conn.request(
            method, url.path + path, body=json.dumps(body) if body is not None else None, headers=headers
        )
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _ok(status, body) -> dict:
    assert status == 200, body[:2000]
    return json.loads(body)


def test_every_client_file_is_there_and_none_holds_the_key(clients, secrets):
    assert sorted(p.name for p in clients.iterdir()) == sorted(FILES)
    key = (secrets / "api_key").read_text().strip()
    for path in clients.iterdir():
        assert key not in path.read_text(encoding="utf-8"), path


def test_openai_env_reads_the_key_and_each_role_answers(env, secrets, report_clients):
    key = (secrets / "api_key").read_text().strip()
    assert env["OPENAI_API_KEY"] == env["AIMACHINE_API_KEY"] == key
    assert env["SSL_CERT_FILE"] == str(secrets / "frontdoor-ca.crt")
    base, ca = env["OPENAI_BASE_URL"], env["SSL_CERT_FILE"]
    assert base == report_clients["base_url"] and base.startswith("https://")
    chat = {"model": env["OPENAI_MODEL"], "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    answer = _ok(*_request(base, ca, key, "POST", "/chat/completions", body=chat))
    assert answer["model"] == env["AIMACHINE_CHAT_MODEL"] == report_clients["models"][0]["name"]
    roles = [m["role"] for m in report_clients["models"]]
    if "autocomplete" in roles:
        assert env["AIMACHINE_AUTOCOMPLETE_BASE_URL"] == base
        body = {"model": env["AIMACHINE_AUTOCOMPLETE_MODEL"], "prompt": "def add(a, b):", "max_tokens": 4}
        _ok(*_request(base, ca, key, "POST", "/completions", body=body))
    if "embed" in roles:
        assert env["AIMACHINE_EMBED_BASE_URL"] == base
        body = {"model": env["AIMACHINE_EMBED_MODEL"], "input": ["def add(a, b): return a + b"]}
        assert len(_ok(*_request(base, ca, key, "POST", "/embeddings", body=body))["data"]) == 1


def test_continue_config_each_model_answers_in_its_role(clients, env):
    config = yaml.safe_load((clients / "continue-config.yaml").read_text(encoding="utf-8"))
    key = env["AIMACHINE_API_KEY"]  # Continue's secret of that name (~/.continue/.env)
    served = json.loads((clients.parent / "report.json").read_text())["clients"]["models"]
    assert [m["model"] for m in config["models"]] == [m["name"] for m in served]
    for entry in config["models"]:
        assert entry["apiKey"] == "${{ secrets.AIMACHINE_API_KEY }}" and entry["provider"] == "vllm"
        base, ca = entry["apiBase"], entry["requestOptions"]["caBundlePath"]
        assert ca == env["SSL_CERT_FILE"]
        if "chat" in entry["roles"]:
            assert entry["roles"] == ["chat", "edit", "apply"]
            assert entry["defaultCompletionOptions"]["contextLength"] == 4096  # the tiny model's
            body = {"model": entry["model"], "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
            assert (
                _ok(*_request(base, ca, key, "POST", "/chat/completions", body=body))["model"]
                == entry["model"]
            )
        elif entry["roles"] == ["autocomplete"]:
            # What Continue sends: its template filled with the code around the cursor, on /completions.
            prompt = (
                entry["promptTemplates"]["autocomplete"]
                .replace("{{{prefix}}}", "def add(a, b):\n    ")
                .replace("{{{suffix}}}", "\n\nprint(add(1, 2))\n")
            )
            assert prompt.startswith("<|fim_prefix|>") and prompt.endswith("<|fim_middle|>")
            body = {
                "model": entry["model"],
                "prompt": prompt,
                "max_tokens": 8,
                "stop": entry["defaultCompletionOptions"]["stop"],
            }
            answer = _ok(*_request(base, ca, key, "POST", "/completions", body=body))
            assert answer["model"] == entry["model"] and isinstance(answer["choices"][0]["text"], str)
        else:
            assert entry["roles"] == ["embed"]
            body = {"model": entry["model"], "input": ["def add(a, b): return a + b"]}
            answer = _ok(*_request(base, ca, key, "POST", "/embeddings", body=body))
            assert answer["model"] == entry["model"] and len(answer["data"][0]["embedding"]) == 64


def test_aider_files_name_the_chat_model_and_it_answers(clients, env):
    conf = yaml.safe_load((clients / ".aider.conf.yml").read_text(encoding="utf-8"))
    chat = env["AIMACHINE_CHAT_MODEL"]
    assert conf["model"] == f"openai/{chat}" and conf["openai-api-base"] == env["OPENAI_BASE_URL"]
    settings = yaml.safe_load((clients / conf["model-settings-file"]).read_text(encoding="utf-8"))
    metadata = json.loads((clients / conf["model-metadata-file"]).read_text(encoding="utf-8"))
    assert [s["name"] for s in settings] == [conf["model"]]
    # The served 4,096 tokens, shared by the prompt and the answer.
    assert metadata[conf["model"]]["max_input_tokens"] + metadata[conf["model"]]["max_output_tokens"] == 4096
    # Aider (litellm) sends the name after openai/, the key from OPENAI_API_KEY, trusting SSL_CERT_FILE.
    body = {
        "model": conf["model"].removeprefix("openai/"),
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4,
    }
    answer = _ok(
        *_request(
            conf["openai-api-base"],
            env["SSL_CERT_FILE"],
            env["OPENAI_API_KEY"],
            "POST",
            "/chat/completions",
            body=body,
        )
    )
    assert answer["model"] == chat


def test_codex_config_answers_on_the_responses_api_through_the_door(clients, env):
    config = tomllib.loads((clients / "codex-config.toml").read_text(encoding="utf-8"))
    provider = config["model_providers"][config["model_provider"]]
    assert provider["wire_api"] == "responses" and provider["base_url"] == env["OPENAI_BASE_URL"]
    # What Codex sends: a streamed Responses API request, the key from env_key as a Bearer token.
    body = {"model": config["model"], "input": "def add(a, b):", "max_output_tokens": 8, "stream": True}
    status, stream = _request(
        provider["base_url"], env["SSL_CERT_FILE"], env[provider["env_key"]], "POST", "/responses", body=body
    )
    assert status == 200, stream[:2000]
    events = [
        line.split(":", 1)[1].strip() for line in stream.decode().splitlines() if line.startswith("event:")
    ]
    if not events:  # data-only SSE: each data line's "type"
        events = [
            json.loads(line[5:])["type"]
            for line in stream.decode().splitlines()
            if line.startswith("data:") and line[5:].strip().startswith("{")
        ]
    assert events[0] == "response.created" and events[-1] == "response.completed", events


def test_claude_code_env_names_the_doors_root_the_key_and_the_chat_model(clients, env):
    claude = _source(clients / "claude-code-env.sh")
    assert claude["ANTHROPIC_AUTH_TOKEN"] == env["AIMACHINE_API_KEY"]
    assert claude["NODE_EXTRA_CA_CERTS"] == env["SSL_CERT_FILE"]
    assert claude["ANTHROPIC_MODEL"] == claude["ANTHROPIC_SMALL_FAST_MODEL"] == env["AIMACHINE_CHAT_MODEL"]
    assert f"{claude['ANTHROPIC_BASE_URL']}/v1" == env["OPENAI_BASE_URL"]
    # Claude Code appends /v1/messages (vLLM only); the same root and token list the model it names.
    models = _ok(
        *_request(
            claude["ANTHROPIC_BASE_URL"],
            claude["NODE_EXTRA_CA_CERTS"],
            claude["ANTHROPIC_AUTH_TOKEN"],
            "GET",
            "/v1/models",
        )
    )
    assert claude["ANTHROPIC_MODEL"] in [m["id"] for m in models["data"]]
