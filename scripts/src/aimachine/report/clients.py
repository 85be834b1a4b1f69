"""Client settings for Continue, Cline, Aider and the OpenAI SDK, pointing at this endpoint.

The API key is referenced (an environment variable, filled from the controller's key file),
never written into these files.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

FILES = {
    "continue-config.yaml": "Continue (~/.continue/config.yaml); the key from Continue's secret {key_env}",
    "cline-settings.json": "Cline: API Provider 'OpenAI Compatible' with these values; "
    "paste the key from {key_file}",
    "aider.conf.yml": "Aider (.aider.conf.yml); export {key_env} as OPENAI_API_KEY first (openai-env.sh)",
    "openai-env.sh": "OpenAI SDK and Aider: `. openai-env.sh` sets OPENAI_BASE_URL and reads the key file",
}


def write_clients(out: Path, endpoint: dict[str, Any]) -> dict[str, Any]:
    """Write the four files into out/; `endpoint` has base_url (…/v1), model, key_env, key_file."""
    base_url, model = str(endpoint["base_url"]).rstrip("/"), str(endpoint["model"])
    key_env = str(endpoint.get("key_env") or "AIMACHINE_API_KEY")
    key_file = endpoint.get("key_file")
    out.mkdir(parents=True, exist_ok=True)
    header = f"# aimachine endpoint {base_url}; the key is not in this file ({key_env}).\n"
    continue_config = {
        "name": "aimachine",
        "version": "1.0.0",
        "schema": "v1",
        "models": [
            {
                "name": f"aimachine {model}",
                "provider": "openai",
                "model": model,
                "apiBase": base_url,
                "apiKey": "${{ secrets." + key_env + " }}",
                "roles": ["chat", "edit", "apply"],
            }
        ],
    }
    (out / "continue-config.yaml").write_text(
        header + yaml.safe_dump(continue_config, sort_keys=False), encoding="utf-8"
    )
    cline = {
        "apiProvider": "openai",
        "openAiBaseUrl": base_url,
        "openAiModelId": model,
        "openAiApiKey": f"<the key from {key_file or '$' + key_env}>",
    }
    (out / "cline-settings.json").write_text(json.dumps(cline, indent=2) + "\n", encoding="utf-8")
    aider = {"openai-api-base": base_url, "model": f"openai/{model}"}
    (out / "aider.conf.yml").write_text(
        header
        + "# Aider reads the key from OPENAI_API_KEY (see openai-env.sh).\n"
        + yaml.safe_dump(aider, sort_keys=False),
        encoding="utf-8",
    )
    read_key = (
        f'"$(head -n1 {shlex.quote(str(key_file))})"'
        if key_file
        else f'"${{{key_env}:?set {key_env} first}}"'
    )
    ca_file = endpoint.get("ca_file")
    # A front door with the appliance's own CA: clients must trust that CA (httpx, the OpenAI SDK
    # and Aider read SSL_CERT_FILE).
    trust = (
        "# The endpoint's certificate is signed by the appliance's CA (its copy on this controller).\n"
        + (f"export SSL_CERT_FILE={shlex.quote(str(ca_file))}\n")
        if ca_file
        else ""
    )
    env = (
        header
        + trust
        + f"export OPENAI_BASE_URL={shlex.quote(base_url)}\n"
        + f"export OPENAI_API_BASE={shlex.quote(base_url)}\n"
        + f"export OPENAI_MODEL={shlex.quote(model)}\n"
        + f"export OPENAI_API_KEY={read_key}\n"
    )
    (out / "openai-env.sh").write_text(env, encoding="utf-8")
    return {
        "base_url": base_url,
        "model": model,
        "key_env": key_env,
        "key_file": key_file,
        "via": endpoint.get("via", "engine"),
        "ca_file": ca_file,
        "files": {
            name: text.format(key_env=key_env, key_file=key_file or "$" + key_env)
            for name, text in FILES.items()
        },
    }
