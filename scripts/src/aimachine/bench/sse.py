"""Incremental parser of a server-sent event stream, with the arrival time of every event.

An event gets the time of the network read that completed it: when a server (or the network)
delivers several events in one read, they share one arrival time, as they do for the user.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its `data` lines joined by newlines, and when its last byte arrived."""

    data: str
    t: float
    event: str = "message"


class SSEDecoder:
    """Feed raw bytes with their arrival time; get back the events they complete.

    Follows the WHATWG event-stream rules that matter here: lines end in CRLF, LF or CR; a blank
    line dispatches; `data:` lines accumulate (one leading space removed); lines starting with ':'
    are comments; `event:` names the event; other fields are ignored.
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._data: list[str] = []
        self._event = ""
        self._cr_seen = False

    def feed(self, chunk: bytes, t: float) -> list[SSEEvent]:
        text = self._utf8.decode(chunk)
        if self._cr_seen and text.startswith("\n"):
            # The LF of a CRLF that a read boundary split: the line already ended at the CR.
            text = text[1:]
        if not text:
            return []
        self._cr_seen = text.endswith("\r")
        lines = _NEWLINE.split(self._pending + text)
        self._pending = lines.pop()
        events: list[SSEEvent] = []
        for line in lines:
            event = self._line(line, t)
            if event is not None:
                events.append(event)
        return events

    def close(self, t: float) -> list[SSEEvent]:
        """End of stream: an event lacking its blank line is still delivered (lenient, like vLLM's client)."""
        tail = self._utf8.decode(b"", final=True)
        events = self.feed(tail.encode(), t) if tail else []
        if self._pending:
            event = self._line(self._pending, t)
            self._pending = ""
            if event is not None:
                events.append(event)
        if self._data:
            events.append(SSEEvent("\n".join(self._data), t, self._event or "message"))
            self._data, self._event = [], ""
        return events

    def _line(self, line: str, t: float) -> SSEEvent | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent("\n".join(self._data), t, self._event or "message")
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        return None
