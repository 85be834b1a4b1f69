"""The client files of the report (aimachine.report.clients, issue #16.7), each answered by a real
server: the chat and autocomplete models on `transformers serve` (the CPU engine), the embedding
model on roles/llm_server/files/embeddings_server.py, the tiny generated models of each role.

Without a front door each model has its own engine's URL, so these files point at three ports; the
molecule test (molecule/default/tests/test_clients.py) sends the same requests through the door,
with TLS and the key. /v1/messages (Claude Code) only vLLM serves: here only its model and URL are
checked, and that the CPU engine does not answer that path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import openai
import pytest
import yaml
from aimachine.report import cli
from aimachine.report.clients import FILES, served_models, write_clients
from aimachine.tinymodel import generate
from conftest import free_port, serve_embeddings

DATA = Path(__file__).parent / "data" / "report"
REPO = Path(__file__).resolve().parents[2]
# The front door's real templates and router in a private nginx (its routing test's harness), and
# the molecule test that sends each client file's request through the deployed door.
ROUTING = REPO / "tests/unit/test_frontdoor_routing.py"
MOLECULE_TEST = REPO / "molecule/default/tests/test_clients.py"
NJS = Path("/usr/lib/nginx/modules/ngx_http_js_module.so")
EMBED_NAME = "tiny-embed"
# The tiny models' context (aimachine.tinymodel: 4,096 positions for chat and autocomplete), what the
# published fact's max_model_len says for them, and the embedding model's hidden size.
CONTEXT = 4096
DIMENSIONS = 64
# The autocomplete model's FIM tokens (its tokenizer has Qwen2.5-Coder's; molecule/default/host_vars).
FIM = {
    "prefix": "<|fim_prefix|>",
    "suffix": "<|fim_suffix|>",
    "middle": "<|fim_middle|>",
    "stop": ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>"],
}
KEY = "K" * 20 + "clients-test-key" + "Z" * 12


@pytest.fixture(scope="module")
def engines(live_server, serve_tiny_model, tmp_path_factory) -> Iterator[dict]:
    """The three served models, as the published fact lists them (vm_llm_aimachine_deployed.models)."""
    work = tmp_path_factory.mktemp("client-engines")
    ac_dir = generate(work / "tiny-autocomplete", seed=0, role="autocomplete")
    embed_dir = generate(work / "tiny-embed", seed=0, role="embed")
    specials = json.loads((ac_dir / "tokenizer.json").read_text())["added_tokens"]
    assert {FIM["prefix"], FIM["suffix"], FIM["middle"]} <= {t["content"] for t in specials}
    with (
        serve_tiny_model(ac_dir, work) as ac,
        serve_embeddings(embed_dir, work / "embed.log", "--served-name", EMBED_NAME) as embed_url,
    ):
        yield {
            "models": [
                {
                    "name": live_server.model,
                    "role": "chat",
                    "max_model_len": CONTEXT,
                    "base_url": f"{live_server.base_url}/v1",
                },
                {
                    "name": ac.model,
                    "role": "autocomplete",
                    "max_model_len": CONTEXT,
                    "fim": FIM,
                    "base_url": f"{ac.base_url}/v1",
                },
                {
                    "name": EMBED_NAME,
                    "role": "embed",
                    "max_model_len": 2048,
                    "dimensions": DIMENSIONS,
                    "base_url": f"{embed_url}/v1",
                },
            ],
        }


@pytest.fixture(scope="module")
def key_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "api_key"
    path.write_text(KEY + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def clients(engines, key_file, tmp_path_factory) -> Path:
    """clients/ as the report writes it (cli.render, the models list from meta as verify.py passes it)."""
    meta = json.loads((DATA / "meta.json").read_text())
    chat = engines["models"][0]
    meta["models"] = engines["models"]
    meta["clients"] = {
        "base_url": chat["base_url"],
        "model": chat["name"],
        "key_env": "AIMACHINE_API_KEY",
        "key_file": str(key_file),
        "via": "engine (loopback)",
        "ca_file": None,
    }
    out = tmp_path_factory.mktemp("report") / "out"
    report = cli.render(out, meta, DATA / "run1" / "bench", DATA / "run1" / "quality", config={}, history=[])
    assert [m["role"] for m in report["clients"]["models"]] == ["chat", "autocomplete", "embed"]
    return out / "clients"


def _source(script: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment after `. script` in bash (what a user's shell gets)."""
    done = subprocess.run(
        ["bash", "-c", '. "$1" && env -0', "source", str(script)],
        capture_output=True,
        env={"PATH": os.environ["PATH"], **(env or {})},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def _chat(base_url: str, model: str) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": "def add(a, b):"}], "max_tokens": 8}
    response = httpx.post(f"{base_url}/chat/completions", json=body, headers=_bearer(), timeout=120)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert isinstance(answer["choices"][0]["message"]["content"], str)
    assert answer["usage"]["completion_tokens"] > 0
    return answer


# --- against the real servers ------------------------------------------------------------------


@pytest.mark.e2e
def test_continue_config_each_model_answers_in_its_role(engines, clients):
    text = (clients / "continue-config.yaml").read_text()
    config = yaml.safe_load(text)
    served = {m["name"]: m for m in engines["models"]}
    assert [(m["model"], m["roles"]) for m in config["models"]] == [
        (engines["models"][0]["name"], ["chat", "edit", "apply"]),
        (engines["models"][1]["name"], ["autocomplete"]),
        (EMBED_NAME, ["embed"]),
    ]
    for entry in config["models"]:
        assert entry["provider"] == "vllm" and entry["apiKey"] == "${{ secrets.AIMACHINE_API_KEY }}"
        base = entry["apiBase"]
        assert base == served[entry["model"]]["base_url"]  # no door: the model's own engine
        if entry["roles"][0] == "chat":
            assert entry["defaultCompletionOptions"]["contextLength"] == CONTEXT
            _chat(base, entry["model"])
        elif entry["roles"] == ["autocomplete"]:
            # What Continue sends: the template filled with the code around the cursor.
            template = entry["promptTemplates"]["autocomplete"]
            prompt = template.replace("{{{prefix}}}", "def add(a, b):\n    return ").replace(
                "{{{suffix}}}", "\n\nprint(add(1, 2))\n"
            )
            assert prompt.startswith(FIM["prefix"]) and prompt.endswith(FIM["middle"])
            assert entry["useLegacyCompletionsEndpoint"] is True
            body = {
                "model": entry["model"],
                "prompt": prompt,
                "max_tokens": 8,
                "stop": entry["defaultCompletionOptions"]["stop"],
            }
            response = httpx.post(f"{base}/completions", json=body, headers=_bearer(), timeout=120)
            assert response.status_code == 200, response.text
            assert isinstance(response.json()["choices"][0]["text"], str)
        else:
            body = {"model": entry["model"], "input": ["def add(a, b):\n    return a + b"]}
            response = httpx.post(f"{base}/embeddings", json=body, headers=_bearer(), timeout=120)
            assert response.status_code == 200, response.text
            assert len(response.json()["data"][0]["embedding"]) == DIMENSIONS


@pytest.mark.e2e
def test_aider_files_name_the_chat_model_and_it_answers(engines, clients):
    conf = yaml.safe_load((clients / ".aider.conf.yml").read_text())
    chat = engines["models"][0]
    assert conf["model"] == conf["weak-model"] == conf["editor-model"] == f"openai/{chat['name']}"
    assert conf["openai-api-base"] == chat["base_url"]
    assert (clients / conf["model-settings-file"]).exists() and (
        clients / conf["model-metadata-file"]
    ).exists()
    settings = yaml.safe_load((clients / ".aider.model.settings.yml").read_text())
    assert [s["name"] for s in settings] == [conf["model"]]
    metadata = json.loads((clients / ".aider.model.metadata.json").read_text())
    # Prompt and answer share the served context.
    meta = metadata[conf["model"]]
    assert (
        meta["max_input_tokens"] + meta["max_output_tokens"] == CONTEXT and meta["max_output_tokens"] == 2048
    )
    # litellm's openai/ prefix: the name after it is what goes to the server.
    _chat(conf["openai-api-base"], conf["model"].removeprefix("openai/"))


@pytest.mark.e2e
def test_codex_config_answers_on_the_responses_api(engines, clients, key_file):
    config = tomllib.loads((clients / "codex-config.toml").read_text())
    provider = config["model_providers"][config["model_provider"]]
    assert config["model_provider"] not in ("openai", "ollama", "lmstudio")  # Codex's reserved ids
    assert provider["wire_api"] == "responses" and config["model"] == engines["models"][0]["name"]
    env = _source(clients / "openai-env.sh")
    assert env[provider["env_key"]] == KEY  # read from the key file when sourced
    # What Codex sends: a streamed Responses API request, the key as a Bearer token.
    client = openai.OpenAI(base_url=provider["base_url"], api_key=env[provider["env_key"]], timeout=120)
    with client.responses.create(
        model=config["model"], input="def add(a, b):", max_output_tokens=8, stream=True
    ) as stream:
        events = [event.type for event in stream]
    assert events[0] == "response.created" and events[-1] == "response.completed", events
    assert "response.output_text.delta" in events


@pytest.mark.e2e
def test_openai_env_gives_each_role_its_model_and_url(engines, clients):
    env = _source(clients / "openai-env.sh")
    chat, ac, embed = engines["models"]
    assert env["OPENAI_API_KEY"] == env["AIMACHINE_API_KEY"] == KEY
    assert env["OPENAI_BASE_URL"] == env["AIMACHINE_CHAT_BASE_URL"] == chat["base_url"]
    assert env["OPENAI_MODEL"] == env["AIMACHINE_CHAT_MODEL"] == chat["name"]
    sdk = {"api_key": env["OPENAI_API_KEY"], "timeout": 120}
    answer = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], **sdk).chat.completions.create(
        model=env["OPENAI_MODEL"], messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert answer.usage.completion_tokens > 0
    assert env["AIMACHINE_AUTOCOMPLETE_MODEL"] == ac["name"]
    fim = openai.OpenAI(base_url=env["AIMACHINE_AUTOCOMPLETE_BASE_URL"], **sdk).completions.create(
        model=env["AIMACHINE_AUTOCOMPLETE_MODEL"],
        prompt=f"{FIM['prefix']}def add(a, b):\n    return {FIM['suffix']}\n{FIM['middle']}",
        max_tokens=8,
    )
    assert isinstance(fim.choices[0].text, str)
    assert env["AIMACHINE_EMBED_MODEL"] == embed["name"]
    vectors = openai.OpenAI(base_url=env["AIMACHINE_EMBED_BASE_URL"], **sdk).embeddings.create(
        model=env["AIMACHINE_EMBED_MODEL"], input=["def add(a, b): return a + b"]
    )
    assert len(vectors.data[0].embedding) == DIMENSIONS


@pytest.mark.e2e
def test_claude_code_env_names_the_chat_model_on_the_servers_root(engines, clients):
    env = _source(clients / "claude-code-env.sh")
    chat = engines["models"][0]
    assert env["ANTHROPIC_AUTH_TOKEN"] == KEY and "ANTHROPIC_API_KEY" not in env
    assert env["ANTHROPIC_MODEL"] == env["ANTHROPIC_SMALL_FAST_MODEL"] == chat["name"]
    # Claude Code appends /v1/messages to the root; the same root lists the model it names.
    assert f"{env['ANTHROPIC_BASE_URL']}/v1" == chat["base_url"]
    listed = httpx.get(f"{env['ANTHROPIC_BASE_URL']}/v1/models", headers=_bearer(), timeout=30)
    assert env["ANTHROPIC_MODEL"] in [m["id"] for m in listed.json()["data"]], listed.text
    # The CPU engine has no Anthropic Messages API (vLLM has; the GPU run checks it: docs/clients.md).
    body = {"model": env["ANTHROPIC_MODEL"], "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{env['ANTHROPIC_BASE_URL']}/v1/messages", json=body, timeout=30).status_code == 404


@pytest.mark.e2e
@pytest.mark.skipif(
    not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()) or not NJS.exists(),
    reason="needs nginx and libnginx-mod-http-js (scripts/bootstrap-host.sh installs them)",
)
def test_the_molecule_test_passes_through_a_real_front_door(engines, tmp_path):
    """molecule/default/tests/test_clients.py, run here: the role's door (TLS, the key, routing by
    model) in front of the three real engines, the files as the report writes them, the controller's
    secrets directory and report layout as the molecule scenario has them."""
    spec = importlib.util.spec_from_file_location("frontdoor_routing", ROUTING)
    routing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(routing)
    routing.PLAYBOOK = (
        shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or routing.PLAYBOOK
    )
    out = tmp_path / "door"
    out.mkdir()
    routing.self_signed(out, "/CN=aimachine test CA", "-addext", "subjectAltName=IP:127.0.0.1")
    port = free_port()
    upstreams = [
        {
            "name": m["name"],
            "port": urlsplit(m["base_url"]).port,
            "role": m["role"],
            "max_model_len": m["max_model_len"],
        }
        for m in engines["models"]
    ]
    routing._render(out, {"routed": {"llm_frontdoor_port": port, "llm_frontdoor_upstreams": upstreams}})
    door = routing.Door(out, "routed", port)
    try:
        ephemeral = tmp_path / "ephemeral"
        secrets = ephemeral / "secrets" / "local"  # testinfra's local:// host is named "local"
        secrets.mkdir(parents=True)
        (secrets / "api_key").write_text(routing.CLIENT_KEY + "\n")
        shutil.copy(out / "server.crt", secrets / "frontdoor-ca.crt")
        meta = json.loads((DATA / "meta.json").read_text())
        meta["models"] = engines["models"]
        meta["clients"] = {
            "base_url": f"https://127.0.0.1:{port}/v1",
            "model": engines["models"][0]["name"],
            "key_env": "AIMACHINE_API_KEY",
            "key_file": str(secrets / "api_key"),
            "via": "front door",
            "ca_file": str(secrets / "frontdoor-ca.crt"),
        }
        latest = ephemeral / "reports" / "local" / "latest"
        cli.render(latest, meta, DATA / "run1" / "bench", DATA / "run1" / "quality", config={}, history=[])
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                str(MOLECULE_TEST),
                "--hosts=local://",
                "-q",
                "-rA",
                "-p",
                "no:cacheprovider",
            ],
            env={**os.environ, "MOLECULE_EPHEMERAL_DIRECTORY": str(ephemeral)},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        door.stop()
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "\n6 passed in " in done.stdout and "skipped" not in done.stdout, done.stdout[-3000:]
    # Every request went through the door, with the key (its log names the key, never shows it).
    log = (out / "access.log").read_text()
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/models"):
        assert f'key=default "POST {path}' in log or f'key=default "GET {path}' in log, path
    assert routing.CLIENT_KEY not in log


# --- the files themselves ------------------------------------------------------------------------


def _endpoint(tmp_path: Path, **extra) -> dict:
    key_file = tmp_path / "api_key"
    key_file.write_text(KEY + "\n")
    return {
        "base_url": "https://192.0.2.10:8443/v1",
        "model": "chat-model",
        "key_env": "AIMACHINE_API_KEY",
        "key_file": str(key_file),
        "via": "front door",
        "ca_file": "/ctl/secrets/h/frontdoor-ca.crt",
        **extra,
    }


BUNDLE = [
    {"name": "chat-model", "role": "chat", "max_model_len": 8192, "base_url": "http://127.0.0.1:8000/v1"},
    {
        "name": "coder",
        "role": "autocomplete",
        "max_model_len": 8192,
        "fim": FIM,
        "base_url": "http://127.0.0.1:8001/v1",
    },
    {"name": "embedder", "role": "embed", "dimensions": 1024, "base_url": "http://127.0.0.1:8002/v1"},
]


def test_every_file_is_written_and_none_holds_the_key(tmp_path):
    info = write_clients(tmp_path / "clients", _endpoint(tmp_path, models=BUNDLE))
    assert sorted(p.name for p in (tmp_path / "clients").iterdir()) == sorted(FILES)
    assert sorted(info["files"]) == sorted(FILES)
    for path in (tmp_path / "clients").iterdir():
        assert KEY not in path.read_text(), path
        assert "AIMACHINE_API_KEY" in path.read_text() or path.suffix == ".json", path  # says how


def test_through_the_door_every_model_has_the_doors_url_and_ca(tmp_path):
    info = write_clients(tmp_path / "c", _endpoint(tmp_path, models=BUNDLE))
    assert {m["base_url"] for m in info["models"]} == {"https://192.0.2.10:8443/v1"}
    config = yaml.safe_load((tmp_path / "c" / "continue-config.yaml").read_text())
    assert {m["apiBase"] for m in config["models"]} == {"https://192.0.2.10:8443/v1"}
    assert {m["requestOptions"]["caBundlePath"] for m in config["models"]} == {
        "/ctl/secrets/h/frontdoor-ca.crt"
    }
    assert "rerank" not in str(config)
    env = _source(tmp_path / "c" / "openai-env.sh")
    assert env["SSL_CERT_FILE"] == "/ctl/secrets/h/frontdoor-ca.crt"
    assert env["AIMACHINE_EMBED_BASE_URL"] == env["OPENAI_BASE_URL"] == "https://192.0.2.10:8443/v1"
    claude = _source(tmp_path / "c" / "claude-code-env.sh")
    assert claude["NODE_EXTRA_CA_CERTS"] == "/ctl/secrets/h/frontdoor-ca.crt"
    assert claude["ANTHROPIC_BASE_URL"] == "https://192.0.2.10:8443"


def test_a_single_chat_model_deployment_gets_correct_files(tmp_path):
    """No models list (an older report's meta, or only chat): one chat model everywhere."""
    write_clients(tmp_path / "c", _endpoint(tmp_path))
    config = yaml.safe_load((tmp_path / "c" / "continue-config.yaml").read_text())
    assert [(m["model"], m["roles"]) for m in config["models"]] == [("chat-model", ["chat", "edit", "apply"])]
    assert "defaultCompletionOptions" not in config["models"][0]  # no context length known
    env = _source(tmp_path / "c" / "openai-env.sh")
    assert "AIMACHINE_AUTOCOMPLETE_MODEL" not in env and env["AIMACHINE_CHAT_MODEL"] == "chat-model"
    metadata = json.loads((tmp_path / "c" / ".aider.model.metadata.json").read_text())
    assert metadata["openai/chat-model"]["max_input_tokens"] is None  # litellm's default then
    assert tomllib.loads((tmp_path / "c" / "codex-config.toml").read_text())["model"] == "chat-model"


def test_without_a_key_file_the_key_comes_from_the_environment(tmp_path):
    write_clients(tmp_path / "c", {**_endpoint(tmp_path), "key_file": None, "via": "engine (loopback)"})
    script = tmp_path / "c" / "openai-env.sh"
    missing = subprocess.run(
        ["bash", "-c", '. "$1"', "s", str(script)], capture_output=True, env={}, check=False
    )
    assert missing.returncode != 0 and b"set AIMACHINE_API_KEY first" in missing.stderr
    assert _source(script, {"AIMACHINE_API_KEY": "from-env"})["OPENAI_API_KEY"] == "from-env"
    assert "api_key" not in script.read_text()


def test_without_a_door_each_model_keeps_its_engines_url():
    models = served_models({"base_url": "http://127.0.0.1:8000/v1", "model": "chat-model", "models": BUNDLE})
    assert [m["base_url"] for m in models] == [m["base_url"] for m in BUNDLE]


def test_the_chat_model_comes_first():
    order = served_models({"base_url": "http://h/v1", "model": "x", "models": BUNDLE[::-1]})
    assert [m["role"] for m in order] == ["chat", "embed", "autocomplete"]


def test_without_a_chat_model_only_the_files_that_need_none(tmp_path):
    """A deployment of only an embedder (the primary model is then the first entry)."""
    info = write_clients(tmp_path / "c", _endpoint(tmp_path, model="embedder", models=BUNDLE[2:]))
    assert sorted(info["files"]) == ["continue-config.yaml", "openai-env.sh"]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == sorted(info["files"])
    config = yaml.safe_load((tmp_path / "c" / "continue-config.yaml").read_text())
    assert [(m["model"], m["roles"]) for m in config["models"]] == [("embedder", ["embed"])]
    env = _source(tmp_path / "c" / "openai-env.sh")
    assert env["AIMACHINE_EMBED_MODEL"] == "embedder" and "AIMACHINE_CHAT_MODEL" not in env


def test_a_reused_directory_keeps_no_earlier_deployments_files(tmp_path):
    """The chat model was served, now only the embedder: Aider's, Codex's, Cline's and Claude Code's
    files from the first run name a model that is gone; they are removed, not listed. Other files
    in the directory are the user's and stay."""
    out = tmp_path / "c"
    write_clients(out, _endpoint(tmp_path, models=BUNDLE))
    (out / "notes.txt").write_text("mine")
    info = write_clients(out, _endpoint(tmp_path, model="embedder", models=BUNDLE[2:]))
    assert sorted(info["files"]) == ["continue-config.yaml", "openai-env.sh"]
    assert sorted(p.name for p in out.iterdir()) == ["continue-config.yaml", "notes.txt", "openai-env.sh"]
