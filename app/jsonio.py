"""The one JSON decoder of the system: the web (request bodies, Gitea payloads) and the worker (records,
envelopes, replays) all decode with `loads`, so what one side accepts the other accepts too, and what is
accepted can always be folded (MySQL utf8mb4, JSON columns) and published again (orjson).

orjson (RFC 8259, strict) decides the text, and on top of it two limits are checked on the decoded value:

- Refused by orjson: invalid UTF-8, lone surrogates (raw or as `\\ud800` escapes), NaN/Infinity, numbers
  that overflow a double (`1e400`), a leading byte order mark, trailing garbage.
- Refused here: nesting deeper than MAX_DEPTH (the value itself counts as one level) and numbers outside the
  signed 64-bit range (integers past 2^63, which orjson would otherwise read as rounded floats, and floats
  that large, which no BIGINT and no 64-bit consumer holds exactly).
- Accepted: any other string content, NUL, U+2028, U+2029 and U+0085 included (NDJSON is split on `\\n`
  only, `split_lines`); duplicate keys, of which the last one wins (the same in every decoder here).

Each refusal says where: orjson's line and column, or the path of the value (`metadata.a.0`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import orjson

MAX_DEPTH = 32
"""How deep an event or a Gitea payload may nest (the object itself is level 1). Its fields then nest at most 31
deep, which every JSON column holds (MariaDB's limit: 31 levels; MySQL 8's: 100)."""
BATCH_DEPTH = 2
"""What a `log.batch` record adds around its lines (the batch object and its `logs` array): a record on an input
topic may nest MAX_DEPTH + BATCH_DEPTH deep; only a batch may use the extra levels (`streams/decode.py`)."""
BOM = b"\xef\xbb\xbf"
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
FLOAT_MAX = 2.0**63
"""Floats from -FLOAT_MAX to FLOAT_MAX, both excluded, are accepted (as are integers from INT_MIN to INT_MAX)."""


class JsonError(ValueError):
    """The text is not JSON this system accepts; the message says what and where (`path`: the dotted path of the
    value refused for a limit, "" for the value itself; None for a text that is not JSON at all)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The decoded value of `data`, or JsonError."""
    return loads_measured(data, max_depth=max_depth)[0]


def loads_measured(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> tuple[Any, int]:
    """(value, depth): the decoded value of `data` and how deep it nests (0 for a scalar), or JsonError."""
    value = parse(data)
    return value, check(value, max_depth=max_depth)


def parse(data: bytes | str) -> Any:
    """The decoded value of `data` before the limits are checked (`check`: a caller that checks parts of it)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if isinstance(data, bytes) and "UTF-8" in exc.msg and not data.startswith(BOM):
            try:  # orjson checks the text as a whole and points at its start: find the byte
                data.decode("utf-8")
            except UnicodeDecodeError as bad:
                raise JsonError(f"not UTF-8: byte {bad.start} ({bad.reason}); send UTF-8 JSON") from None
        raise JsonError(f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> int:
    """How deep `value` (decoded JSON) nests, or JsonError when it nests deeper than `max_depth` or holds a number
    outside the signed 64-bit range. One pass, level by level, without paths (a log batch is half a megabyte:
    about as long as orjson takes to decode it); the path is looked for only for a refusal."""
    if type(value) is not dict and type(value) is not list:
        if not _number_ok(value):
            raise JsonError(f"the number {value!r} is outside the signed 64-bit range", "")
        return 0
    level: list[Any] = [value]
    depth = 1
    while True:
        deeper: list[Any] = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                kind = type(child)
                if kind is str:
                    continue
                if kind is dict or kind is list:
                    deeper.append(child)
                elif (kind is int and not INT_MIN <= child <= INT_MAX) or (kind is float and not -FLOAT_MAX < child < FLOAT_MAX):
                    where = _path_to(value, lambda v, _d: not _number_ok(v))
                    raise JsonError(f"{where}: the number {child!r} is outside the signed 64-bit range", where)
        if not deeper:
            return depth
        if depth >= max_depth:
            where = _path_to(value, lambda v, d: d > max_depth and type(v) in (dict, list))
            raise JsonError(f"{where} nests deeper than {max_depth} levels (the limit)", where)
        level = deeper
        depth += 1


def _number_ok(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return bool(INT_MIN <= value <= INT_MAX)
    if kind is float:
        return bool(-FLOAT_MAX < value < FLOAT_MAX)
    return True


def _path_to(value: Any, bad: Any) -> str:
    """The dotted path of a value for which `bad(value, depth)` holds (the shallowest first)."""
    for path, child, depth in _walk(value, (), 1):
        if bad(child, depth):
            parts = [str(p) for p in path] if len(path) <= 12 else [*map(str, path[:6]), "...", *map(str, path[-3:])]
            return ".".join(parts)
    return ""


def _walk(node: Any, path: tuple[str | int, ...], depth: int) -> Iterator[tuple[tuple[str | int, ...], Any, int]]:
    yield path, node, depth
    queue: deque[tuple[Any, tuple[str | int, ...], int]] = deque([(node, path, depth)])
    while queue:
        current, where, level = queue.popleft()
        items = current.items() if type(current) is dict else enumerate(current) if type(current) is list else ()
        for key, child in items:
            yield (*where, key), child, level + 1
            if type(child) in (dict, list):
                queue.append((child, (*where, key), level + 1))


def split_lines(body: bytes, separator: bytes = b"\n") -> Iterator[tuple[int, bytes]]:
    """(number, line) of each non-blank line of an NDJSON body, split on `\n` only (a `\r` before it is JSON
    whitespace): U+2028, U+2029 and U+0085 are characters inside strings, not line ends. `separator` b"\x1e": the
    records of a JSON text sequence (RFC 7464: RS, then JSON, then `\n`, which is whitespace)."""
    for number, line in enumerate(body.split(separator), start=1):
        if line.strip():
            yield number, line


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of a value `loads` accepted (or built from such values)."""
    return orjson.dumps(value)
