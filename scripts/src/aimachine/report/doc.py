"""The report as blocks of pieces that carry where each number came from; Markdown and HTML writers.

A number enters the report only as a `Q` (a quantity with `measured` or `source`), data text
(names, model answers, evidence) only as a `T`; every other string is the renderer's own wording.
`audit` finds any digit in the renderer's wording (outside a short list of unit-like tokens) and
any quantity without its provenance, so a hard-coded or unsourced number is a test failure.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The renderer's own words may contain these and no other digits.
ALLOWED_IN_WORDING = re.compile(
    r"sqrt\(p\(1-p\)/n\)|p50|p90|p99|pass@1|pass@k|recall@1|\b1M\b|/v1\b|"
    r"\b(bf16|fp16|fp8|int4|int8|awq)\b|\bE2E\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Q:
    """A quantity in display units; `measured` names the measurement, `source` the citation."""

    value: float | int | None
    unit: str = ""
    digits: int = 1
    measured: str | None = None
    source: str | None = None
    signed: bool = False

    def text(self) -> str:
        if self.value is None:
            return "not measured"
        v = self.value
        body = f"{v:+,.{self.digits}f}" if self.signed else f"{v:,.{self.digits}f}"
        if not self.unit:
            return body
        return body + ("%" if self.unit == "%" else f" {self.unit}")

    @property
    def provenance(self) -> str | None:
        return self.measured or self.source


@dataclass(frozen=True)
class T:
    """Text from the data (a name, an answer, evidence), with where it came from."""

    text: str
    measured: str | None = None
    source: str | None = None

    @property
    def provenance(self) -> str | None:
        return self.measured or self.source


@dataclass(frozen=True)
class Bold:
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Code:
    piece: Any


@dataclass(frozen=True)
class Link:
    label: Any
    url: Any


Inline = Any  # str | Q | T | Bold | Code | Link | list of these


def b(*parts: Any) -> Bold:
    return Bold(tuple(parts))


@dataclass
class Heading:
    level: int
    parts: list[Any]
    anchor: str = ""


@dataclass
class Para:
    parts: list[Any]


@dataclass
class Table:
    header: list[Any]
    rows: list[list[Any]]
    align: str = ""  # one letter a column: l or r (default: r for cells that are all quantities)


@dataclass
class CodeBlock:
    text: T
    lang: str = ""


@dataclass
class Image:
    file: str
    alt: str


@dataclass
class Bullets:
    items: list[list[Any]]


@dataclass
class Quote:
    parts: list[Any]


@dataclass
class Rule:
    pass


@dataclass
class Section:
    """A heading and its blocks; `summary` marks the one-page part at the top."""

    title: str
    blocks: list[Any] = field(default_factory=list)
    level: int = 2
    summary: bool = False
    # a title with data in it (a model's name): the pieces, `title` their plain text
    title_parts: list[Any] | None = None

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


def _flat(parts: Any) -> list[Any]:
    if isinstance(parts, list | tuple):
        return [p for part in parts for p in _flat(part)]
    return [parts]


# --- audit -----------------------------------------------------------------------------------------


def _inline_pieces(parts: Any) -> list[Any]:
    out = []
    for p in _flat(parts):
        if isinstance(p, Bold):
            out += _inline_pieces(list(p.parts))
        elif isinstance(p, Code):
            out += _inline_pieces(p.piece)
        elif isinstance(p, Link):
            out += _inline_pieces(p.label) + _inline_pieces(p.url)
        else:
            out.append(p)
    return out


def _block_pieces(block: Any) -> list[Any]:
    if isinstance(block, Section):
        head = _inline_pieces(block.title_parts) if block.title_parts is not None else [block.title]
        return head + [p for child in block.blocks for p in _block_pieces(child)]
    if isinstance(block, Heading | Para | Quote):
        return _inline_pieces(block.parts)
    if isinstance(block, Table):
        return _inline_pieces(block.header) + [p for row in block.rows for p in _inline_pieces(row)]
    if isinstance(block, CodeBlock):
        return [block.text]
    if isinstance(block, Bullets):
        return [p for item in block.items for p in _inline_pieces(item)]
    if isinstance(block, Image):
        return [T(block.file, measured="plot file"), block.alt]
    return []


def audit(blocks: list[Any]) -> list[str]:
    """Every number without a measurement or a source; empty when the report is clean."""
    problems = []
    for block in blocks:
        for piece in _block_pieces(block):
            if isinstance(piece, str):
                stripped = ALLOWED_IN_WORDING.sub("", piece)
                if re.search(r"\d", stripped):
                    problems.append(f"a number in the renderer's wording: {piece!r}")
            elif isinstance(piece, Q):
                if piece.value is not None and not piece.provenance:
                    problems.append(f"a quantity without measurement or source: {piece.text()!r}")
            elif isinstance(piece, T):
                if re.search(r"\d", piece.text) and not piece.provenance:
                    problems.append(f"data text with a number and no provenance: {piece.text[:80]!r}")
            elif piece is not None:
                problems.append(f"an unknown piece: {piece!r}")
    return problems


def provenances(blocks: list[Any]) -> list[tuple[str, str]]:
    """(rendered text, provenance) of every number and numeric text, for the references list."""
    out = []
    for block in blocks:
        for piece in _block_pieces(block):
            if (
                isinstance(piece, Q | T)
                and piece.provenance
                and (isinstance(piece, T) or piece.value is not None)
            ):
                out.append((piece.text() if isinstance(piece, Q) else piece.text, piece.provenance))
    return out


# --- Markdown ---------------------------------------------------------------------------------------


def _md_inline(parts: Any) -> str:
    out = []
    for p in _flat(parts):
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, Q):
            out.append(p.text())
        elif isinstance(p, T):
            out.append(p.text)
        elif isinstance(p, Bold):
            inner = _md_inline(list(p.parts))
            out.append(f"**{inner}**" if inner else "")
        elif isinstance(p, Code):
            out.append(f"`{_md_inline(p.piece)}`")
        elif isinstance(p, Link):
            out.append(f"[{_md_inline(p.label)}]({_md_inline(p.url)})")
    return "".join(out)


def _is_numeric_cell(cell: Any) -> bool:
    pieces = [p for p in _inline_pieces(cell) if not (isinstance(p, str) and not p.strip())]
    return bool(pieces) and all(isinstance(p, Q) for p in pieces)


def _alignments(table: Table) -> list[str]:
    if table.align:
        return list(table.align)
    cols = len(table.header)
    out = []
    for i in range(cols):
        cells = [row[i] for row in table.rows if i < len(row)]
        numeric = [c for c in cells if _is_numeric_cell(c)]
        out.append("r" if cells and len(numeric) >= max(1, len(cells) // 2) else "l")
    return out


def _md_table(table: Table) -> list[str]:
    def cell(c: Any) -> str:
        return _md_inline(c).replace("|", "\\|").replace("\n", " ")

    header = [cell(h) for h in table.header]
    rows = [[cell(c) for c in row] + [""] * (len(header) - len(row)) for row in table.rows]
    align = _alignments(table)
    widths = [max([len(header[i]), 3] + [len(r[i]) for r in rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(widths[i]) if align[i] == "r" else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (widths[i] + 1) + ":") if align[i] == "r" else ("-" * (widths[i] + 2))
            for i in range(len(header))
        )
        + "|"
    )
    return [line(header), rule, *[line(r) for r in rows], ""]


def _md_block(block: Any) -> list[str]:
    if isinstance(block, Section):
        lines = ["#" * block.level + " " + block.title, ""]
        for child in block.blocks:
            lines += _md_block(child)
        return lines
    if isinstance(block, Heading):
        return ["#" * block.level + " " + _md_inline(block.parts), ""]
    if isinstance(block, Para):
        return [_md_inline(block.parts), ""]
    if isinstance(block, Quote):
        return ["> " + _md_inline(block.parts), ""]
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, CodeBlock):
        fence = "````" if "```" in block.text.text else "```"
        return [fence + block.lang, block.text.text.rstrip("\n"), fence, ""]
    if isinstance(block, Image):
        return [f"![{block.alt}]({block.file})", ""]
    if isinstance(block, Bullets):
        return [*("- " + _md_inline(item) for item in block.items), ""]
    if isinstance(block, Rule):
        return ["---", ""]
    raise TypeError(f"unknown block {block!r}")


def to_markdown(blocks: list[Any]) -> str:
    lines: list[str] = []
    for block in blocks:
        lines += _md_block(block)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


# --- HTML -------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;
color:#1d2433;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.3rem}
h2{border-bottom:1px solid #d8dde6;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d8dde6;padding:.25rem .5rem;vertical-align:top}
th{background:#f2f4f8;text-align:left}
td.r{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
blockquote{border-left:4px solid #c0392b;background:#fdf2f0;margin:.5rem 0;padding:.5rem .8rem}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;font-size:.85rem}
code{background:#f2f4f8;padding:0 .2rem} pre code{background:none;padding:0}
img{max-width:100%;border:1px solid #e3e6ec;margin:.4rem 0}
section.summary{background:#f8fafc;border:1px solid #d8dde6;border-radius:6px;padding:.2rem 1rem 1rem;
margin-bottom:2rem}
nav{font-size:.85rem;columns:3} nav a{display:block}
"""


def _html_inline(parts: Any) -> str:
    out = []
    for p in _flat(parts):
        if isinstance(p, str):
            out.append(html.escape(p))
        elif isinstance(p, Q):
            title = html.escape(p.provenance or "", quote=True)
            out.append(
                f'<span title="{title}">{html.escape(p.text())}</span>' if title else html.escape(p.text())
            )
        elif isinstance(p, T):
            out.append(html.escape(p.text))
        elif isinstance(p, Bold):
            out.append(f"<strong>{_html_inline(list(p.parts))}</strong>")
        elif isinstance(p, Code):
            out.append(f"<code>{_html_inline(p.piece)}</code>")
        elif isinstance(p, Link):
            url = _md_inline(p.url)
            out.append(f'<a href="{html.escape(url, quote=True)}">{_html_inline(p.label)}</a>')
    return "".join(out)


def _html_block(block: Any, images: Path | None) -> str:
    if isinstance(block, Section):
        inner = "".join(_html_block(child, images) for child in block.blocks)
        tag = f"h{block.level}"
        return f'<{tag} id="{block.anchor}">{html.escape(block.title)}</{tag}>\n{inner}'
    if isinstance(block, Heading):
        return f"<h{block.level}>{_html_inline(block.parts)}</h{block.level}>\n"
    if isinstance(block, Para):
        return f"<p>{_html_inline(block.parts)}</p>\n"
    if isinstance(block, Quote):
        return f"<blockquote>{_html_inline(block.parts)}</blockquote>\n"
    if isinstance(block, Table):
        align = _alignments(block)
        head = "".join(f"<th>{_html_inline(h)}</th>" for h in block.header)
        body = "".join(
            "<tr>"
            + "".join(
                f'<td class="{align[i] if i < len(align) else "l"}">{_html_inline(c)}</td>'
                for i, c in enumerate(row)
            )
            + "</tr>\n"
            for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>\n"
    if isinstance(block, CodeBlock):
        return f"<pre><code>{html.escape(block.text.text)}</code></pre>\n"
    if isinstance(block, Image):
        path = images / block.file if images else None
        if path is not None and path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            src = f"data:image/png;base64,{data}"
        else:
            src = html.escape(block.file, quote=True)
        return f'<img alt="{html.escape(block.alt, quote=True)}" src="{src}">\n'
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_html_inline(item)}</li>" for item in block.items) + "</ul>\n"
    if isinstance(block, Rule):
        return "<hr>\n"
    raise TypeError(f"unknown block {block!r}")


def to_html(blocks: list[Any], title: str, images: Path | None = None) -> str:
    """One self-contained page: the summary sections first (boxed), a table of contents, the rest."""
    first = next((i for i, b in enumerate(blocks) if isinstance(b, Section)), len(blocks))
    last = max((i for i, b in enumerate(blocks) if isinstance(b, Section)), default=len(blocks) - 1)
    lead, tail = blocks[:first], blocks[last + 1 :]
    summary = [b for b in blocks[first : last + 1] if isinstance(b, Section) and b.summary]
    details = [b for b in blocks[first : last + 1] if not (isinstance(b, Section) and b.summary)]
    nav = "".join(
        f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in details if isinstance(s, Section)
    )
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n",
        "".join(_html_block(b, images) for b in lead),
        '<section class="summary">' + "".join(_html_block(s, images) for s in summary) + "</section>\n",
        f"<nav>{nav}</nav>\n",
        "".join(_html_block(s, images) for s in details),
        "".join(_html_block(b, images) for b in tail),
        "</body></html>\n",
    ]
    return "".join(parts)
