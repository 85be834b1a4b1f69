"""Client settings for each served model and role, pointing at this endpoint (docs/clients.md).

Continue (config.yaml with roles), Aider (conf, model settings, model metadata), OpenAI Codex CLI
(config.toml, the Responses API), Claude Code (an env file, the Anthropic Messages API: vLLM only),
Cline and the OpenAI SDK (openai-env.sh). The API key is referenced (an environment variable, or
read from the controller's key file when the file is used), never written into these files.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

# Continue's roles per served role (docs.continue.dev: chat, edit, apply, autocomplete, embed, rerank).
CONTINUE_ROLES = {
    "chat": ["chat", "edit", "apply"],
    "autocomplete": ["autocomplete"],
    "embed": ["embed"],
    "rerank": ["rerank"],
}
# Aider asks for this many output tokens at most (its metadata file); the rest is input.
AIDER_MAX_OUTPUT = 4096

FILES = {
    "continue-config.yaml": "Continue (~/.continue/config.yaml): every served model with its roles; "
    "the key from Continue's secret {key_env} (~/.continue/.env)",
    ".aider.conf.yml": "Aider (.aider.conf.yml in the repository or home): the chat model; "
    "the key from OPENAI_API_KEY (`. openai-env.sh`)",
    ".aider.model.settings.yml": "Aider's settings for the served chat model (edit format, weak and editor "
    "model); .aider.conf.yml names it",
    ".aider.model.metadata.json": "Aider's context window and cost for the served chat model; "
    ".aider.conf.yml names it",
    "codex-config.toml": "OpenAI Codex CLI (~/.codex/config.toml): provider aimachine, "
    'wire_api = "responses"; the key from {key_env} (`. openai-env.sh`)',
    "claude-code-env.sh": "Claude Code: `. claude-code-env.sh` sets ANTHROPIC_BASE_URL, reads the key "
    "into ANTHROPIC_AUTH_TOKEN; needs vLLM's /v1/messages (not the CPU engine)",
    "cline-settings.json": "Cline: API Provider 'OpenAI Compatible' with these values; "
    "paste the key from {key_file}",
    "openai-env.sh": "OpenAI SDK, Aider, Codex: `. openai-env.sh` sets the base URL, the CA, each role's "
    "model name and reads the key file",
}


def served_models(endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    """The served models (name, role, max_model_len, fim, dimensions, base_url), the chat model first.

    `endpoint["models"]` is vm_llm_aimachine_deployed.models; without it, one chat model (`model`).
    Through the front door every model has the door's base URL (it routes by "model"); without a
    door each model has its own engine's loopback URL.
    """
    base_url = str(endpoint["base_url"]).rstrip("/")
    door = endpoint.get("via") == "front door"
    out = []
    for m in endpoint.get("models") or [{"name": endpoint["model"], "role": "chat"}]:
        own = str(m.get("base_url") or base_url).rstrip("/")
        out.append(
            {
                "name": str(m["name"]),
                "role": str(m.get("role") or "chat"),
                "max_model_len": int(m.get("max_model_len") or 0),
                "fim": m.get("fim"),
                "dimensions": m.get("dimensions"),
                "base_url": base_url if door or not m.get("base_url") else own,
            }
        )
    out.sort(key=lambda m: m["role"] != "chat")  # stable: the primary chat model stays first
    return out


def _by_role(models: list[dict[str, Any]], role: str) -> dict[str, Any] | None:
    return next((m for m in models if m["role"] == role), None)


def _continue(models: list[dict[str, Any]], key_env: str, ca_file: str | None) -> dict[str, Any]:
    entries = []
    for m in models:
        if m["role"] not in CONTINUE_ROLES:
            continue
        entry: dict[str, Any] = {
            "name": f"aimachine {m['role']} ({m['name']})",
            # Continue's vLLM provider (docs.continue.dev/customize/model-providers/more/vllm).
            "provider": "vllm",
            "model": m["name"],
            "apiBase": m["base_url"],
            "apiKey": "${{ secrets." + key_env + " }}",
            "roles": CONTINUE_ROLES[m["role"]],
        }
        if m["max_model_len"] and m["role"] in ("chat", "autocomplete"):
            entry["defaultCompletionOptions"] = {"contextLength": m["max_model_len"]}
        if m["role"] == "autocomplete":
            fim = m.get("fim") or {}
            if fim.get("prefix"):
                # The served model's own FIM tokens, on /v1/completions (not chat).
                entry["promptTemplates"] = {
                    "autocomplete": f"{fim['prefix']}{{{{{{prefix}}}}}}{fim['suffix']}"
                    f"{{{{{{suffix}}}}}}{fim['middle']}"
                }
                if fim.get("stop"):
                    entry.setdefault("defaultCompletionOptions", {})["stop"] = list(fim["stop"])
            entry["useLegacyCompletionsEndpoint"] = True
        if ca_file:
            entry["requestOptions"] = {"caBundlePath": ca_file}
        entries.append(entry)
    return {"name": "aimachine", "version": "1.0.0", "schema": "v1", "models": entries}


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_clients(out: Path, endpoint: dict[str, Any]) -> dict[str, Any]:
    """Write the client files into out/; return what the report says about them.

    `endpoint` has base_url (…/v1), model (the primary model), key_env, key_file, via, ca_file and
    optionally models (vm_llm_aimachine_deployed.models).
    """
    base_url, model = str(endpoint["base_url"]).rstrip("/"), str(endpoint["model"])
    key_env = str(endpoint.get("key_env") or "AIMACHINE_API_KEY")
    key_file = endpoint.get("key_file")
    ca_file = endpoint.get("ca_file") or None
    models = served_models(endpoint)
    # Aider, Codex, Cline and Claude Code need a chat model; a deployment without one (e.g. only
    # an embedder) gets Continue's file and openai-env.sh.
    chat = _by_role(models, "chat")
    primary = chat or models[0]
    out.mkdir(parents=True, exist_ok=True)
    # A reused directory may hold an earlier run's files for a model no longer served: they go, so
    # what is there (and listed) is this deployment's.
    for name in FILES:
        (out / name).unlink(missing_ok=True)
    where_key = f"read from {key_file} when used" if key_file else f"from ${key_env}"
    header = f"# aimachine endpoint {base_url}; the key is not in this file ({key_env}, {where_key}).\n"

    (out / "continue-config.yaml").write_text(
        header
        + f"# Continue resolves ${{{{ secrets.{key_env} }}}} from ~/.continue/.env (0600): "
        + f"{key_env}=<the key>.\n"
        + yaml.safe_dump(_continue(models, key_env, ca_file), sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )

    read_key = (
        f'"$(head -n1 {shlex.quote(str(key_file))})"'
        if key_file
        else f'"${{{key_env}:?set {key_env} first}}"'
    )
    if chat is not None:
        # Aider: litellm's openai/ prefix sends the name after it to an OpenAI-compatible server.
        aider_name = f"openai/{chat['name']}"
        aider = {
            "openai-api-base": chat["base_url"],
            "model": aider_name,
            "weak-model": aider_name,
            "editor-model": aider_name,
            "model-settings-file": ".aider.model.settings.yml",
            "model-metadata-file": ".aider.model.metadata.json",
            "show-model-warnings": False,
        }
        (out / ".aider.conf.yml").write_text(
            header
            + "# Aider reads the key from OPENAI_API_KEY and the CA from SSL_CERT_FILE (`. openai-env.sh`).\n"
            + yaml.safe_dump(aider, sort_keys=False),
            encoding="utf-8",
        )
        settings = [
            {
                "name": aider_name,
                "edit_format": "diff",
                "weak_model_name": aider_name,
                "editor_model_name": aider_name,
                "use_repo_map": True,
                "examples_as_sys_msg": True,
            }
        ]
        (out / ".aider.model.settings.yml").write_text(
            header + yaml.safe_dump(settings, sort_keys=False), encoding="utf-8"
        )
        context = chat["max_model_len"] or None
        # The prompt and the answer share the served context: a full prompt leaves no room to answer.
        output = min(AIDER_MAX_OUTPUT, context // 2) if context else AIDER_MAX_OUTPUT
        metadata = {
            aider_name: {
                "max_input_tokens": context - output if context else None,
                "max_output_tokens": output,
                "max_tokens": context,
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                "litellm_provider": "openai",
                "mode": "chat",
            }
        }
        (out / ".aider.model.metadata.json").write_text(
            json.dumps(metadata, indent=2) + "\n", encoding="utf-8"
        )

        # Codex CLI: a provider of its own ("openai" is reserved), the Responses API.
        codex = (
            header
            + f"# Codex reads the key from ${key_env} (env_key; `. openai-env.sh` sets it).\n"
            + f"model = {_toml_str(chat['name'])}\n"
            + 'model_provider = "aimachine"\n'
            + "\n[model_providers.aimachine]\n"
            + 'name = "aimachine"\n'
            + f"base_url = {_toml_str(chat['base_url'])}\n"
            + f"env_key = {_toml_str(key_env)}\n"
            + 'wire_api = "responses"\n'
        )
        (out / "codex-config.toml").write_text(codex, encoding="utf-8")

        cline = {
            "apiProvider": "openai",
            "openAiBaseUrl": chat["base_url"],
            "openAiModelId": chat["name"],
            "openAiApiKey": f"<the key from {key_file or '$' + key_env}>",
        }
        (out / "cline-settings.json").write_text(json.dumps(cline, indent=2) + "\n", encoding="utf-8")

        # Claude Code: the Anthropic Messages API on the server root (it appends /v1/messages);
        # ANTHROPIC_AUTH_TOKEN goes out as "Authorization: Bearer", what the front door checks.
        root = chat["base_url"].removesuffix("/v1")
        claude = (
            header
            + "# Claude Code needs vLLM's /v1/messages (the CPU engine does not serve it).\n"
            + (f"export NODE_EXTRA_CA_CERTS={shlex.quote(str(ca_file))}\n" if ca_file else "")
            + f"export ANTHROPIC_BASE_URL={shlex.quote(root)}\n"
            + f"export ANTHROPIC_AUTH_TOKEN={read_key}\n"
            + f"export ANTHROPIC_MODEL={shlex.quote(chat['name'])}\n"
            + f"export ANTHROPIC_SMALL_FAST_MODEL={shlex.quote(chat['name'])}\n"
            + f"export ANTHROPIC_DEFAULT_HAIKU_MODEL={shlex.quote(chat['name'])}\n"
            + "export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n"
        )
        (out / "claude-code-env.sh").write_text(claude, encoding="utf-8")

    # A front door with the appliance's own CA: clients must trust that CA (httpx, the OpenAI SDK
    # and Aider read SSL_CERT_FILE; Node, so Claude Code, reads NODE_EXTRA_CA_CERTS).
    trust = (
        "# The endpoint's certificate is signed by the appliance's CA (its copy on this controller).\n"
        + f"export SSL_CERT_FILE={shlex.quote(str(ca_file))}\n"
        if ca_file
        else ""
    )
    # Each role's model and where it answers (one URL through the door; each engine's without).
    role_names = "".join(
        f"export AIMACHINE_{role.upper()}_MODEL={shlex.quote(m['name'])}\n"
        f"export AIMACHINE_{role.upper()}_BASE_URL={shlex.quote(m['base_url'])}\n"
        for role in ("chat", "autocomplete", "embed", "rerank")
        if (m := _by_role(models, role))
    )
    env = (
        header
        + trust
        + f"export OPENAI_BASE_URL={shlex.quote(primary['base_url'])}\n"
        + f"export OPENAI_API_BASE={shlex.quote(primary['base_url'])}\n"
        + f"export OPENAI_MODEL={shlex.quote(primary['name'])}\n"
        + role_names
        + f"export {key_env}={read_key}\n"
        + f'export OPENAI_API_KEY="${key_env}"\n'
    )
    (out / "openai-env.sh").write_text(env, encoding="utf-8")

    return {
        "base_url": base_url,
        "model": model,
        "models": [{"name": m["name"], "role": m["role"], "base_url": m["base_url"]} for m in models],
        "key_env": key_env,
        "key_file": key_file,
        "via": endpoint.get("via", "engine"),
        "ca_file": ca_file,
        "files": {
            name: text.format(key_env=key_env, key_file=key_file or "$" + key_env)
            for name, text in FILES.items()
            if (out / name).exists()
        },
    }
