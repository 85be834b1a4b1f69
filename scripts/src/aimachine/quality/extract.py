"""Find the solution in a model's answer.

Chat models wrap code in prose, use several fenced blocks (the solution, a usage example, tests),
forget fences, or stop mid-block. The steps:

1. candidate blocks: fenced ``python``/``py``/unlabelled blocks (an unclosed last fence runs to
   the end); without fences, the runs of lines that look like code between the prose;
2. each block is parsed; one that does not parse is cut back to its longest parseable start
   (answers cut off by max_tokens);
3. top-level definitions of all blocks are merged, a later definition of a name replacing an
   earlier one (an answer that shows the bug, then the fix);
4. from the entry point, keep what it needs: the functions, classes and constants it refers to,
   transitively, and the imports they use. Usage examples, prints, asserts, test classes and
   ``if __name__ == "__main__":`` sections are dropped.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, field

PYTHON_LANGS = {"", "python", "python3", "py", "py3", "pycon", "ipython"}
FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
DEFINITION_START = re.compile(
    r"^((async\s+)?def\s+\w+\s*\(|class\s+\w+|@[\w.]+|import\s+[\w.]+|from\s+[\w.]+\s+import\b)"
)
BLOCK_START = re.compile(r"^(if|elif|else|for|while|with|try|except|finally|match|case)\b")
CLOSING_ONLY = re.compile(r"^[\)\]\}][\)\]\},:\s]*$")


def parse_quietly(source: str) -> ast.Module:
    """ast.parse without the SyntaxWarnings (invalid escapes ...) that model code is full of."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(source)


@dataclass
class Extraction:
    code: str
    method: str  # fenced | unfenced | body | unparseable | none
    blocks: int = 0
    entry_point_found: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "blocks": self.blocks,
            "entry_point_found": self.entry_point_found,
            "notes": self.notes,
        }


@dataclass
class _Block:
    source: str
    tree: ast.Module


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block, in order; an unclosed last block runs to the end."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, info = opening.group("fence"), opening.group("info").lower()
        body = []
        i += 1
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            body.append(lines[i])
            i += 1
        blocks.append((info, "\n".join(body)))
        i += 1
    return blocks


def _parse_prefix(source: str, whole_first: bool = False) -> ast.Module | None:
    """The longest parseable run of leading lines of `source` (an answer cut off by max_tokens)."""
    if whole_first:
        try:
            return parse_quietly(source)
        except SyntaxError:
            pass
    lines = source.splitlines()
    for end in range(len(lines) - 1, 0, -1):
        try:
            return parse_quietly("\n".join(lines[:end]))
        except SyntaxError:
            continue
    return None


def _looks_like_code(line: str) -> bool:
    stripped = line.strip()
    if DEFINITION_START.match(stripped) or CLOSING_ONLY.match(stripped):
        return True
    if BLOCK_START.match(stripped):
        # "with @lru_cache ..." in a sentence is prose; a block header ends with a colon.
        return stripped.split("#", 1)[0].rstrip().endswith(":")
    if re.match(r"^[A-Za-z]+\b", stripped) and " " in stripped and not re.search(r"[=(\[]", stripped):
        return False  # prose: words with spaces, no assignment or call
    try:
        parse_quietly(stripped)
    except SyntaxError:
        return False
    return True


def _code_spans(lines: list[str]) -> list[list[int]]:
    """Indices of runs of code-looking lines (plus indented and blank continuation lines)."""
    spans: list[list[int]] = []
    current: list[int] = []
    for index, line in enumerate(lines):
        if not line.strip():
            if current:
                current.append(index)
            continue
        if (line[0] in " \t" and current) or _looks_like_code(line):
            current.append(index)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    for span in spans:
        while span and not lines[span[-1]].strip():
            span.pop()
    return [span for span in spans if span]


def unfenced_spans(text: str) -> list[str]:
    """Runs of code-looking lines between prose, as source texts."""
    lines = text.splitlines()
    return ["\n".join(lines[i] for i in span) for span in _code_spans(lines)]


def _statement_lines(source_lines: list[str]) -> set[int]:
    """Indices (into source_lines) covered by the top-level statements of their parseable start."""
    tree = _parse_prefix("\n".join(source_lines), whole_first=True)
    covered: set[int] = set()
    for node in tree.body if tree else []:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        covered.update(range(start - 1, (node.end_lineno or node.lineno)))
    return covered


def _statement_source(lines: list[str], node: ast.stmt) -> str:
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    end = node.end_lineno or node.lineno
    return "\n".join(lines[start - 1 : end])


def _bound_names(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    names = []
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Name):
                names.append(sub.id)
    return names


def _import_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    return [(alias.asname or alias.name).split(".")[0] for alias in node.names]


def _referenced(node: ast.AST) -> set[str]:
    return {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name)}


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__name__" in _referenced(node.test)


def _select(blocks: list[_Block], entry_point: str | None) -> tuple[str, bool]:
    """Merge the blocks' top-level statements and keep the entry point's dependency closure."""
    imports: list[tuple[int, str, ast.Import | ast.ImportFrom]] = []
    definitions: dict[str, tuple[int, str, ast.stmt]] = {}
    order = 0
    for block in blocks:
        lines = block.source.splitlines()
        for node in block.tree.body:
            order += 1
            if isinstance(node, ast.Import | ast.ImportFrom):
                imports.append((order, _statement_source(lines, node), node))
                continue
            if _is_main_guard(node):
                continue
            for name in _bound_names(node):
                definitions[name] = (order, _statement_source(lines, node), node)
    found = entry_point is not None and entry_point in definitions
    kept: dict[int, tuple[str, ast.stmt]] = {}
    if found:
        needed, seen = [entry_point], set()
        while needed:
            name = needed.pop()
            if name in seen or name not in definitions:
                continue
            seen.add(name)
            position, source, node = definitions[name]
            kept[position] = (source, node)
            needed.extend(_referenced(node) - seen)
    else:
        # No entry point to start from: keep every definition (usage code still goes).
        kept = {position: (source, node) for position, source, node in definitions.values()}
    used: set[str] = set().union(*(_referenced(node) for _, node in kept.values()))
    keep = {position: source for position, (source, _) in kept.items()}
    seen_imports = set()
    for position, source, node in imports:
        wanted = (
            isinstance(node, ast.ImportFrom)
            and (node.module == "__future__" or any(alias.name == "*" for alias in node.names))
        ) or any(name in used for name in _import_names(node))
        if wanted and source not in seen_imports:
            seen_imports.add(source)
            keep[position] = source
    return "\n\n".join(keep[p] for p in sorted(keep)).strip() + "\n", found


def _blocks_from(sources: list[str]) -> tuple[list[_Block], list[str]]:
    blocks, notes = [], []
    for source in sources:
        try:
            tree: ast.Module | None = parse_quietly(source)
        except SyntaxError:
            tree = _parse_prefix(source)
            notes.append(
                "a block does not parse" if tree is None else "a block was cut to its parseable start"
            )
        if tree is not None and tree.body:
            blocks.append(_Block(source, tree))
    return blocks, notes


def _defines(blocks: list[_Block], name: str | None) -> bool:
    return name is not None and any(
        name in _bound_names(node) for block in blocks for node in block.tree.body
    )


def extract_code(text: str, entry_point: str | None = None, prompt: str | None = None) -> Extraction:
    """The runnable solution in `text`; `prompt` (a function stub) lets a bare body be completed."""
    text = THINK.sub("", text)
    fenced = fenced_blocks(text)
    python_sources = [body for lang, body in fenced if lang in PYTHON_LANGS and body.strip()]
    method = "fenced"
    if not python_sources:
        method = "unfenced"
        try:
            # Plain code (a completion, a reference solution): no need to guess where prose is.
            python_sources = [text] if parse_quietly(text).body else []
        except SyntaxError:
            python_sources = unfenced_spans(text)
    blocks, notes = _blocks_from(python_sources)
    if prompt and not _defines(blocks, entry_point):
        # An answer that is only the function body: complete the stub with it.
        for source in python_sources:
            first = next((line for line in source.splitlines() if line.strip()), "")
            if first[:1] in (" ", "\t"):
                completed, _ = _blocks_from([prompt.rstrip("\n") + "\n" + source])
                if _defines(completed, entry_point):
                    blocks, method = completed, "body"
                    break
    if not blocks:
        if python_sources:
            longest = max(python_sources, key=len)
            return Extraction(longest, "unparseable", len(fenced), False, [*notes, "no block parses"])
        return Extraction("", "none", len(fenced), False, ["no code found"])
    code, found = _select(blocks, entry_point)
    if entry_point and not found:
        notes.append(f"entry point {entry_point!r} not defined")
    return Extraction(code, method, len(fenced), found, notes)


def prose(text: str) -> str:
    """The answer without its code statements: what explains, not what runs.

    Lines of top-level statements in Python blocks and in unfenced code are dropped; fences too.
    Comments and text after the code in a block (explanations written inside the fence) stay.
    """
    lines = THINK.sub("", text).splitlines()
    dropped: set[int] = set()
    outside: list[int] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            outside.append(i)
            i += 1
            continue
        fence, info = opening.group("fence"), opening.group("info").lower()
        start = i + 1
        i = start
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and set(lines[i].strip()) == {fence[0]}
        ):
            i += 1
        body = list(range(start, i))
        dropped.update({start - 1, i})
        if info in PYTHON_LANGS:
            dropped.update(body[k] for k in _statement_lines([lines[j] for j in body]))
        i += 1
    outside_lines = [lines[j] for j in outside]
    for span in _code_spans(outside_lines):
        covered = _statement_lines([outside_lines[k] for k in span])
        dropped.update(outside[span[k]] for k in covered)
    return "\n".join(line for j, line in enumerate(lines) if j not in dropped)


def truncate_completion(completion: str, stops: list[str]) -> str:
    """Cut a completion at the first stop sequence (servers may ignore or not support `stop`)."""
    cut = len(completion)
    for stop in stops:
        index = completion.find(stop)
        if index != -1:
            cut = min(cut, index)
    return completion[:cut]
