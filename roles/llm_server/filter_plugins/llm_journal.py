"""``llm_journal_reason``: the lines of an engine's journal that say why it did not start.

Engines print pages of usage text or traceback around the one line that matters; a rollback
message quotes the lines that name an error (the last ``count`` of them), else the last lines.
files/wait_ready.py applies the same pattern on the host.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

REASON = re.compile(r"error|exception|traceback|no such|invalid|cannot|killed|out of memory", re.IGNORECASE)


def journal_reason(lines: Sequence[str], count: int = 10) -> str:
    """Reason lines joined with " | " (duplicates from repeated restarts kept once)."""
    recent = [line.strip() for line in lines if line.strip()]
    reasons = list(dict.fromkeys(line for line in recent if REASON.search(line)))
    return " | ".join(reasons[-count:] if reasons else recent[-count:])


class FilterModule:
    """Ansible filter entry point."""

    def filters(self) -> dict:
        return {"llm_journal_reason": journal_reason}
