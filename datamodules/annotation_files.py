"""Reading annotation files as untrusted text: every error names `file:line` and the expected form.

Annotation lists come from scripts, spreadsheets and other tools, so they arrive with a UTF-8 BOM, CRLF
line ends, short rows, text where a number belongs, or paths like `../../etc/passwd`. The helpers here
read CSV, JSON and line lists (BOM stripped, CRLF accepted) and give each row its line number, so the
parsers in `formats.py` can say exactly which line is wrong and what it should look like.
"""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mtv.errors import ConfigError

ENCODING = "utf-8-sig"  # UTF-8 that drops a leading byte-order mark


class AnnotationError(ConfigError):
    """An annotation file is missing or malformed; the message names the file (and line) and the fix."""


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) for every non-blank line."""
    for number, line in enumerate(_text(path).splitlines(), 1):
        if line.strip():
            yield number, line.strip()


def read_csv(path: Path, expected: str, header: bool = True) -> Iterator[tuple[int, Any]]:
    """(line number, row) per non-empty row: a dict by column name with `header`, else a list of fields.

    A header row without the columns a parser needs is reported by `column` on the first row."""
    with path.open(newline="", encoding=ENCODING) as f:
        reader = csv.DictReader(f) if header else csv.reader(f)
        try:
            for row in reader:
                if any((v or "").strip() for v in (row.values() if header else row) if isinstance(v, str)):
                    yield reader.line_num, row
        except csv.Error as err:
            raise AnnotationError(f"{path}:{reader.line_num}: {err}; expected {expected}") from None


def read_json(path: Path, expected: str) -> Any:
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); expected {expected}") from None


def json_list(path: Path, expected: str) -> Iterator[tuple[int, Any]]:
    """(line number where the entry starts, entry) for a JSON file holding one list."""
    text = _text(path)
    read_json(path, expected)  # a syntax error is reported with its line first
    decoder = json.JSONDecoder()
    position = _skip_space(text, 0)
    if text[position:position + 1] != "[":
        line = text.count("\n", 0, position) + 1
        raise AnnotationError(f"{path}:{line}: expected a JSON list: {expected}")
    position = _skip_space(text, position + 1)
    line, counted = 1, 0  # line numbers counted incrementally: SSv2's train.json has 169k entries
    while text[position] != "]":
        entry, end = decoder.raw_decode(text, position)
        line, counted = line + text.count("\n", counted, position), position
        yield line, entry
        position = _skip_space(text, end)
        if text[position] == ",":
            position = _skip_space(text, position + 1)


def column(row: Any, name: str | int, where: str, expected: str) -> str:
    """A non-empty field of a CSV row (by column name, or by index for header-less files)."""
    value = row.get(name) if isinstance(row, dict) else (row[name] if len(row) > name else None)
    if not isinstance(value, str) or not value.strip():
        what = f"column {name!r}" if isinstance(name, str) else f"field {name + 1}"
        raise AnnotationError(f"{where}: {what} is missing or empty (a short row?); expected {expected}")
    return value.strip()


def entry(item: Any, name: str, where: str, expected: str) -> Any:
    """A key of a JSON object entry."""
    if not isinstance(item, dict) or name not in item:
        raise AnnotationError(f"{where}: no {name!r} in {str(item)[:80]}; expected {expected}")
    return item[name]


def as_int(value: Any, where: str, name: str, expected: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise AnnotationError(f"{where}: {name} {value!r} is not an integer; expected {expected}")


def as_float(value: Any, where: str, name: str, expected: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: {name} {value!r} is not a number; expected {expected}") from None


def inside(base: str, relative: str, where: str, allow_outside: bool) -> str:
    """`base/relative`, refused when `relative` is absolute or climbs out of `base` with `..` (unless
    `dataset.allow_outside_root=true`). Symlinks inside `base` are followed: the folder is trusted, the
    annotation file is not."""
    joined = os.path.normpath(os.path.join(base, relative))
    base_norm = os.path.normpath(base)
    if not allow_outside and os.path.commonpath([os.path.abspath(joined), os.path.abspath(base_norm)]) != \
            os.path.abspath(base_norm):
        raise AnnotationError(f"{where}: path {relative!r} resolves outside {base_norm} (to {joined}); "
                              "annotation paths must stay inside the dataset folder; set "
                              "dataset.allow_outside_root=true if this is intended")
    return joined


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding=ENCODING)
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not UTF-8 text (byte {err.start}); save the file as UTF-8") from None


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position
