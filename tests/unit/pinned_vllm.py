"""The Python with the pinned vLLM (`make vllm-venv`; CI sets AIMACHINE_VLLM_PYTHON to it), for the
tests that hold rendered files and probes against vLLM's own parser and models."""

from __future__ import annotations

import os
import shutil


def vllm_python() -> str | None:
    """AIMACHINE_VLLM_PYTHON when it names a runnable Python, else None (those tests skip)."""
    python = os.environ.get("AIMACHINE_VLLM_PYTHON")
    return python if python and shutil.which(python) else None
