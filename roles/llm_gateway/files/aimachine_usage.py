"""Per-request usage log of the aimachine gateway: one JSON line per request on stdout (journal).

LiteLLM loads this module from the config's directory (``callbacks: aimachine_usage.usage_log``).
Each line starts with ``aimachine-usage`` and names the key by its alias, never the key itself,
and says which backend answered, the tokens, the cost LiteLLM computed and the outcome.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

PREFIX = "aimachine-usage"
# LiteLLM's background health checks are not usage; their failures show in LiteLLM's own log.
HEALTH_CHECK_ALIAS = "litellm-internal-health-check"


def record(payload: dict[str, Any] | None, outcome: str) -> dict[str, Any]:
    """The logged fields of LiteLLM's standard logging payload."""
    payload = payload or {}
    meta = payload.get("metadata") or {}
    return {
        "outcome": outcome,
        "key_alias": meta.get("user_api_key_alias") or ("master" if meta.get("user_api_key_hash") else None),
        "team": meta.get("user_api_key_team_alias"),
        "user": meta.get("user_api_key_user_id"),
        "model_group": payload.get("model_group"),
        "backend": payload.get("model_id"),
        "api_base": payload.get("api_base"),
        "stream": payload.get("stream"),
        "prompt_tokens": payload.get("prompt_tokens"),
        "completion_tokens": payload.get("completion_tokens"),
        "cost_usd": payload.get("response_cost"),
        "seconds": payload.get("response_time"),
        "error": (payload.get("error_str") or "")[:200] or None,
        "request_id": payload.get("id"),
    }


class UsageLog(CustomLogger):
    """Writes one line per finished request; a logging failure never fails the request."""

    def _write(self, kwargs: dict[str, Any], outcome: str) -> None:
        try:
            fields = record(kwargs.get("standard_logging_object"), outcome)
            if fields["key_alias"] == HEALTH_CHECK_ALIAS:
                return
            line = json.dumps(fields, default=str)
            print(f"{PREFIX} {line}", file=sys.stdout, flush=True)
        except Exception as error:  # logging must not break serving
            print(f"{PREFIX} error writing the usage line: {error}", file=sys.stderr, flush=True)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time) -> None:  # noqa: ANN001
        self._write(kwargs, "success")

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time) -> None:  # noqa: ANN001
        self._write(kwargs, "failure")


usage_log = UsageLog()
