"""The endpoint's API key, read one way by the bench, the quality harness and the verification.

A key comes from a file (its first line: the host's 0600 key file or the controller's copy) or from
the environment, never from the command line, where `ps` and shell history would show it.
"""

from __future__ import annotations

import os
from pathlib import Path

API_KEY_ENV = ("AIMACHINE_API_KEY", "OPENAI_API_KEY")


class KeyFileError(RuntimeError):
    """The key file named cannot be read or holds no key."""


def read_api_key(path: Path | None, env_names: tuple[str, ...] = API_KEY_ENV) -> str | None:
    """The key from `path` (first line) if given, else from the first of `env_names` that is set."""
    if path is not None:
        try:
            lines = Path(path).read_text(encoding="utf-8").strip().splitlines()
        except OSError as error:
            raise KeyFileError(f"cannot read API key file {path}: {error.strerror}") from error
        if not lines or not lines[0].strip():
            raise KeyFileError(f"API key file {path} is empty")
        return lines[0].strip()
    for name in env_names:
        if os.environ.get(name):
            return os.environ[name]
    return None
