"""Plain values as JSON, both ways: what crosses between the trusted process and the candidate's.

Only these types cross: None, bool, int, float (nan and the infinities included), str, bytes,
complex, list, tuple, dict (plain keys), set and frozenset. The trusted side (`encode`) takes
exact types only; the candidate's writer sends a subclass of one (a Counter, a namedtuple) as its
base type's data, so what arrives is that data, never the subclass or its methods. JSON gives
None, bools, ints, floats, strings and lists; everything else is a one-key object tag, so a tuple
comes back a tuple, a dict with int or tuple keys comes back as it was.

`decode` builds nothing but plain values: whatever the candidate writes, the trusted side gets
data, never an object whose methods the candidate chose. A value the candidate's writer could not
encode arrives as ``{"x": type name}`` and decodes to `NotPlain`.

Large arguments cross by identity (`Refs`, the scenarios' tests): a list of a million items that
the tests pass in every call is encoded once, in an objects line the candidate reads first, and
each call refers to it as ``{"r": n}``; the candidate's side hands the same object to every call
that refers to it, as the tests did. Such an argument must not change between calls (checked).

This module is also the candidate's writer: `CANDIDATE_SOURCE` is its text, pasted into the
candidate's program (the candidate can change that copy; that only changes the data it sends).
"""

from __future__ import annotations

import json
import math
import sys

MAX_DEPTH = 64
TAGS = ("t", "d", "s", "fs", "b", "c", "f", "x", "r")
# Containers, strings and bytes at least this long are passed by identity where `Refs` is in use.
REF_MIN_LEN = 1000
REF_KINDS = (list, tuple, dict, set, frozenset, str, bytes)


class NotPlain(ValueError):
    """A value that is not plain data (or a malformed encoding of one)."""


class Refs:
    """Large arguments by identity: each one's encoding once (`encoded`), ``{"r": n}`` in the calls.

    `expected` (replay): the encodings the record step made; the n-th object seen must encode the
    same, or the call counts as one the reference never saw.
    """

    def __init__(self, expected: list[str] | None = None) -> None:
        self.objects: list[object] = []  # held, so that no id is reused while this lives
        self.encoded: list[str] = []
        self.lengths: list[int] = []
        self._index: dict[int, int] = {}
        self._expected = expected

    def ref(self, value: object, depth: int) -> dict[str, int] | None:
        if type(value) not in REF_KINDS or len(value) < REF_MIN_LEN:  # type: ignore[arg-type]
            return None
        n = self._index.get(id(value))
        if n is None:
            n = len(self.objects)
            text = json.dumps(encode(value, depth), ensure_ascii=True, separators=(",", ":"))
            if self._expected is not None and (n >= len(self._expected) or self._expected[n] != text):
                raise NotPlain(f"argument {n} passed by identity differs from the recorded one")
            self._index[id(value)] = n
            self.objects.append(value)
            self.encoded.append(text)
            self.lengths.append(len(value))  # type: ignore[arg-type]
        elif len(value) != self.lengths[n]:  # type: ignore[arg-type]
            raise NotPlain("an argument passed by identity changed between calls")
        return {"r": n}

    def changed(self) -> list[int]:
        """Objects whose data no longer is what was encoded (the tests changed them in place)."""
        return [
            n
            for n, value in enumerate(self.objects)
            if json.dumps(encode(value), ensure_ascii=True, separators=(",", ":")) != self.encoded[n]
        ]

    def line(self) -> str:
        """The objects line the candidate reads before the calls (empty without objects)."""
        return '{"o":[' + ",".join(self.encoded) + "]}" if self.encoded else ""


def encode(value: object, depth: int = 0, refs: Refs | None = None) -> object:
    """The JSON-ready form of a plain value; NotPlain for anything else."""
    if depth > MAX_DEPTH:
        raise NotPlain("nested too deep")
    kind = type(value)
    if refs is not None:
        ref = refs.ref(value, depth)
        if ref is not None:
            return ref
    if value is None or kind is bool or kind is int or kind is str:
        return value
    if kind is float:
        return value if math.isfinite(value) else {"f": repr(value)}  # type: ignore[arg-type]
    if kind is list:
        return [encode(item, depth + 1, refs) for item in value]  # type: ignore[attr-defined]
    if kind is tuple:
        return {"t": [encode(item, depth + 1, refs) for item in value]}  # type: ignore[attr-defined]
    if kind is dict:
        return {"d": [[encode(k, depth + 1, refs), encode(v, depth + 1, refs)] for k, v in value.items()]}  # type: ignore[attr-defined]
    if kind is set or kind is frozenset:
        return {"s" if kind is set else "fs": [encode(item, depth + 1, refs) for item in value]}  # type: ignore[attr-defined]
    if kind is bytes:
        return {"b": value.hex()}  # type: ignore[attr-defined]
    if kind is complex:
        return {"c": [encode(value.real, depth + 1), encode(value.imag, depth + 1)]}  # type: ignore[attr-defined]
    raise NotPlain(f"{kind.__name__} is not plain data")


def decode(data: object, depth: int = 0, refs: list[object] | None = None) -> object:
    """The plain value `data` (from `encode`, maybe written by the candidate) stands for.

    ``{"r": n}`` is `refs[n]` (the caller's own object) where `refs` is given, else NotPlain."""
    if depth > MAX_DEPTH:
        raise NotPlain("nested too deep")
    kind = type(data)
    if data is None or kind is bool or kind is int or kind is float or kind is str:
        return data
    if kind is list:
        return [decode(item, depth + 1, refs) for item in data]  # type: ignore[attr-defined]
    if kind is not dict or len(data) != 1:  # type: ignore[arg-type]
        raise NotPlain(f"malformed plain value ({kind.__name__})")
    ((tag, body),) = data.items()  # type: ignore[attr-defined]
    if tag == "x":
        raise NotPlain(f"{str(body)[:80]} is not plain data")
    if tag == "r":
        if refs is None or type(body) is not int or not 0 <= body < len(refs):
            raise NotPlain("malformed reference")
        return refs[body]
    if tag == "f" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "b" and type(body) is str:
        try:
            return bytes.fromhex(body)
        except ValueError as error:
            raise NotPlain(f"malformed bytes: {error}") from error
    if type(body) is not list:
        raise NotPlain(f"malformed plain value (tag {str(tag)[:10]!r})")
    if tag == "t":
        return tuple(decode(item, depth + 1, refs) for item in body)
    if tag == "c" and len(body) == 2:
        return complex(_number(decode(body[0], depth + 1, refs)), _number(decode(body[1], depth + 1, refs)))
    try:
        if tag == "d":
            pairs = [_pair(item) for item in body]
            return {decode(k, depth + 1, refs): decode(v, depth + 1, refs) for k, v in pairs}
        if tag in ("s", "fs"):
            items = (decode(item, depth + 1, refs) for item in body)
            return set(items) if tag == "s" else frozenset(items)
    except TypeError as error:  # an unhashable key: a list as a dict key or set member
        raise NotPlain(f"malformed plain value: {error}") from error
    raise NotPlain(f"malformed plain value (tag {str(tag)[:10]!r})")


def _number(value: object) -> float:
    if type(value) not in (int, float):
        raise NotPlain("complex parts must be numbers")
    return value  # type: ignore[return-value]


def _pair(item: object) -> tuple[object, object]:
    if type(item) is not list or len(item) != 2:  # type: ignore[arg-type]
        raise NotPlain("malformed dict item")
    return item[0], item[1]  # type: ignore[index]


def dumps(value: object, refs: Refs | None = None) -> str:
    """One line of JSON for a plain value (the key recorded calls are matched by)."""
    return json.dumps(encode(value, refs=refs), ensure_ascii=True, separators=(",", ":"))


def loads(text: str | bytes) -> object:
    return decode(json.loads(text))


# Python 3.11 refuses to convert ints over 4300 digits to or from text, a guard against quadratic
# parsing of untrusted input; tests with big factorials need more, the candidate's answers are
# untrusted: a bound in between.
MAX_INT_DIGITS = 100_000


def allow_big_ints() -> None:
    """Allow ints up to MAX_INT_DIGITS digits through JSON in this process (process-wide)."""
    if hasattr(sys, "set_int_max_str_digits"):
        current = sys.get_int_max_str_digits()
        if current != 0 and current < MAX_INT_DIGITS:
            sys.set_int_max_str_digits(MAX_INT_DIGITS)


# The candidate's side: decode the recorded calls, call the entry point, write one line per call.
# Standard library only; names start with __aim so they do not clash with the solution's.
CANDIDATE_SOURCE = r"""
def __aim_run(__aim_fn):
    import json, math, os, sys
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)

    objects, by_id = [], {}

    def enc(v, depth=0, refs=False):
        if depth > 64:
            return {"x": "nested too deep"}
        if refs and id(v) in by_id:
            return {"r": by_id[id(v)]}  # passed by identity: its changes are not sent back
        # A subclass of a plain type (Counter, a namedtuple, an IntEnum) crosses as its base type's
        # data: only the data arrives, none of its methods.
        if v is None or type(v) is bool:
            return v
        if isinstance(v, int):
            return int.__int__(v)
        if isinstance(v, str):
            return str.__str__(v)
        if isinstance(v, float):
            v = float.__float__(v)
            return v if math.isfinite(v) else {"f": repr(v)}
        if isinstance(v, list):
            return [enc(i, depth + 1, refs) for i in list.__iter__(v)]
        if isinstance(v, tuple):
            return {"t": [enc(i, depth + 1, refs) for i in tuple.__iter__(v)]}
        if isinstance(v, dict):
            return {"d": [[enc(a, depth + 1, refs), enc(b, depth + 1, refs)] for a, b in dict.items(v)]}
        if isinstance(v, (set, frozenset)):
            items = [enc(i, depth + 1, refs) for i in frozenset.__iter__(frozenset(v))]
            return {"s" if isinstance(v, set) else "fs": items}
        if isinstance(v, bytes):
            return {"b": bytes.hex(v)}
        if isinstance(v, complex):
            return {"c": [enc(complex.__getattribute__(v, "real")), enc(complex.__getattribute__(v, "imag"))]}
        return {"x": type(v).__name__}

    def dec(d):
        if type(d) is list:
            return [dec(i) for i in d]
        if type(d) is not dict:
            return d
        ((t, b),) = d.items()
        if t == "f":
            return float(b)
        if t == "b":
            return bytes.fromhex(b)
        if t == "t":
            return tuple(dec(i) for i in b)
        if t == "d":
            return {dec(a): dec(c) for a, c in b}
        if t == "s":
            return set(dec(i) for i in b)
        if t == "fs":
            return frozenset(dec(i) for i in b)
        if t == "c":
            return complex(dec(b[0]), dec(b[1]))
        if t == "r":
            return objects[b]
        raise ValueError(t)

    with open(sys.argv[1], encoding="ascii") as f:
        calls = [line for line in f.read().splitlines() if line]
    if calls and calls[0].startswith('{"o":'):
        objects.extend(dec(o) for o in json.loads(calls.pop(0))["o"])
        by_id.update((id(o), n) for n, o in enumerate(objects))
    out = os.fdopen(int(sys.argv[2]), "w", encoding="ascii")
    for index, line in enumerate(calls):
        args, kwargs = dec(json.loads(line))
        before = json.dumps(enc(list(args), refs=True))
        try:
            value = __aim_fn(*args, **kwargs)
        except BaseException as e:
            answer = {"raise": type(e).__name__}
        else:
            answer = {"value": enc(value)}
            after = enc(list(args), refs=True)
            if json.dumps(after) != before:
                answer["args_after"] = after
        try:
            text = json.dumps([index, answer], ensure_ascii=True, separators=(",", ":"))
        except (ValueError, RecursionError):
            text = json.dumps([index, {"value": {"x": "unencodable"}}])
        out.write(text + "\n")
        out.flush()
    out.close()
"""
