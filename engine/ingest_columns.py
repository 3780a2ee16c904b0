"""Settling column types: segments -> one typed Arrow column per name -> a pandas DataFrame.

A column whose pieces disagree (a port that is 443 in one block and "443" or "4.9k" in another)
becomes numbers when every value reads as a number (unit suffixes k/M/G/T allowed), else text;
either way the report says what happened. CSV text columns get the same reading.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engine.ingest_arrow import COUNT_SUFFIX, Segment, compact_json
from engine.ingest_report import ReadLog

MAX_NUMBER_DIGITS = 19  # longer digit strings are identifiers (trace ids), not numbers; int64 has 19 digits
SUFFIX_MULTIPLIERS = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "g": 1e9, "T": 1e12}
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(?:([kKMGgT])[bB]?)?\s*$")
_IDENTIFIER_LIKE = re.compile(r"^\s*[+-]?(?:0\d|\d{%d,}\s*$)" % (MAX_NUMBER_DIGITS + 1))  # zero-padded or too long
_PLAIN_INTEGER = re.compile(r"^[+-]?\d+$")
_TRUE_FALSE = {"true", "false"}


@dataclass
class Column:
    data: pa.ChunkedArray  # int64 | float64 | bool | string | null
    is_array: bool = False  # JSON text of arrays; <name>.count sits beside it
    parsed_from: str | None = None  # the JSON-text column this was parsed out of

    @property
    def is_typed(self) -> bool:
        kind = self.data.type
        return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)

    @property
    def non_null(self) -> int:
        return len(self.data) - self.data.null_count


Columns = dict[str, Column]


# ----------------------------------------------------------------------------------------------
# Segments -> columns
# ----------------------------------------------------------------------------------------------
def assemble(segments: list[Segment], log: ReadLog) -> Columns:
    names = dict.fromkeys(name for segment in segments for name in segment.columns)
    array_names = set().union(*(s.array_columns for s in segments)) if segments else set()
    mixed_lists = set().union(*(s.mixed_list_columns for s in segments)) if segments else set()
    columns: Columns = {}
    for name in names:
        data, mixed = _settle(name, segments, log)
        columns[name] = Column(data, is_array=name in array_names and name not in mixed_lists and not mixed)
    for name in array_names:
        count = name + COUNT_SUFFIX
        if count not in columns:
            continue
        if columns[name].is_array:
            columns[count].data = columns[count].data.fill_null(0)  # no array in a block: zero items
        else:
            del columns[count]
            log.coerced(f"{name}: arrays mixed with single values; kept as text without {count}")
    return columns


def _kind(kind: pa.DataType) -> str:
    if pa.types.is_integer(kind):
        return "int"
    if pa.types.is_floating(kind):
        return "float"
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_null(kind):
        return "null"
    return "str"


_TARGET = {frozenset(): pa.string(), frozenset({"int"}): pa.int64(), frozenset({"float"}): pa.float64(),
           frozenset({"int", "float"}): pa.float64(), frozenset({"bool"}): pa.bool_(), frozenset({"str"}): pa.string()}


def _settle(name: str, segments: list[Segment], log: ReadLog) -> tuple[pa.ChunkedArray, bool]:
    kinds: set[str] = set()
    for segment in segments:
        part = segment.columns.get(name)
        if isinstance(part, list):
            kinds.add("mixed")
        elif part is not None and part.null_count < len(part):
            kinds.add(_kind(part.type))
    target = _TARGET.get(frozenset(kinds))
    if target is not None:
        chunks = []
        for segment in segments:
            part = segment.columns.get(name)
            if part is None:
                chunks.append(pa.nulls(segment.n_rows, target))
            else:
                chunks.extend(_chunks(part.cast(target)))
        return pa.chunked_array(chunks, target), False
    values: list[Any] = []
    arrays = 0
    for segment in segments:
        part = segment.columns.get(name)
        if part is None:
            values.extend([None] * segment.n_rows)
        elif isinstance(part, list):
            values.extend(part)
        else:
            if name in segment.array_columns:
                arrays += len(part) - part.null_count
            values.extend(part.to_pylist())
    return pa.chunked_array([coerce_mixed(name, values, log, array_texts=arrays)]), True


def _chunks(part: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return list(part.chunks) if isinstance(part, pa.ChunkedArray) else [part]


# ----------------------------------------------------------------------------------------------
# Mixed values
# ----------------------------------------------------------------------------------------------
_NOT_A_NUMBER = object()


def parse_number(text: str) -> int | float | None:
    """'443' -> 443, '4.9k' -> 4900, '1.2M' -> 1200000, '0.5' -> 0.5; identifiers and words -> None."""
    match = _NUMBER.match(text)
    if not match or _IDENTIFIER_LIKE.match(text):
        return None
    digits, suffix = match.groups()
    if suffix is None and _PLAIN_INTEGER.match(digits):
        return int(digits)
    value = float(digits) * SUFFIX_MULTIPLIERS.get(suffix or "", 1.0)
    if not math.isfinite(value):
        return None
    if suffix and value.is_integer() and abs(value) < 2**53:
        return int(value)  # "4.9k" -> 4900, a count
    return value


def coerce_mixed(name: str, values: list[Any], log: ReadLog, *, array_texts: int = 0) -> pa.Array:
    """Numbers if every value reads as one, else text; reported either way."""
    parsed: list[Any] = []
    counts = {"number": 0, "numeric text": 0, "text": 0, "boolean": 0, "array": 0}
    example: tuple[str, Any] | None = None
    cache: dict[str, Any] = {}
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            parsed.append(None)
        elif isinstance(value, bool):
            counts["boolean"] += 1
            parsed.append(_NOT_A_NUMBER)
        elif isinstance(value, (int, float)):
            counts["number"] += 1
            parsed.append(value)
        elif isinstance(value, str):
            if value not in cache:
                cache[value] = parse_number(value)
            number = cache[value]
            if number is None:
                counts["text"] += 1
                parsed.append(_NOT_A_NUMBER)
            else:
                counts["numeric text"] += 1
                example = example or (value, number)
                parsed.append(number)
        else:
            counts["array"] += 1
            parsed.append(_NOT_A_NUMBER)
    counts["array"] += array_texts
    counts["text"] -= array_texts
    if counts["text"] == counts["boolean"] == counts["array"] == 0:
        return _numbers(name, parsed, counts["numeric text"], example, log)
    summary = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counts.items() if n)
    log.coerced(f"{name}: mixed value types ({summary}) kept as text")
    return pa.array([None if v is None else _as_text(v) for v in values], pa.string())


def _numbers(name: str, parsed: list[Any], n_texts: int, example: tuple[str, Any] | None, log: ReadLog) -> pa.Array:
    if n_texts:
        shown = f" (e.g. {example[0]!r} -> {example[1]})" if example else ""
        log.coerced(f"{name}: {n_texts} text value{'s' if n_texts != 1 else ''} coerced to numbers{shown}")
    if all(v is None or (isinstance(v, int) and abs(v) < 2**63) for v in parsed):
        return pa.array(parsed, pa.int64())
    return pa.array([None if v is None else float(v) for v in parsed], pa.float64())


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (int, str)):
        return str(value)
    return compact_json(value)


# ----------------------------------------------------------------------------------------------
# CSV: every cell arrives as text
# ----------------------------------------------------------------------------------------------
def type_text_columns(columns: Columns, log: ReadLog) -> None:
    for name, column in columns.items():
        if column.data.type == pa.string() and column.non_null and not column.is_array:
            column.data = _typed_text(name, column.data, log)


def _typed_text(name: str, data: pa.ChunkedArray, log: ReadLog) -> pa.ChunkedArray:
    uniques = pc.unique(data).drop_null()
    if pc.any(pc.match_substring_regex(uniques, _IDENTIFIER_LIKE.pattern)).as_py():
        return data  # zero-padded codes, long ids: keep the text as it was written
    for target in (pa.int64(), pa.float64()):
        try:
            return pc.cast(data, target)
        except pa.ArrowInvalid:
            pass
    lowered = {str(v).strip().lower() for v in uniques.to_pylist()}
    if lowered <= _TRUE_FALSE:
        if data.null_count:
            return data  # booleans with gaps stay text ("true"/"false"/missing)
        return pc.equal(pc.utf8_lower(pc.utf8_trim_whitespace(data)), "true")
    numbers = [parse_number(v) for v in uniques.to_pylist()]
    if any(n is None for n in numbers):
        return data
    suffixed = [v for v, n in zip(uniques.to_pylist(), numbers) if not _plain_number(v)]
    example = f" (e.g. {suffixed[0]!r} -> {parse_number(suffixed[0])})" if suffixed else ""
    log.coerced(f"{name}: {len(suffixed)} distinct text value(s) with unit suffixes coerced to numbers{example}")
    target = pa.int64() if all(isinstance(n, int) for n in numbers) else pa.float64()
    lookup = pa.array(numbers, target)
    return pc.take(lookup, pc.index_in(data, value_set=uniques))


def _plain_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# Columns -> DataFrame
# ----------------------------------------------------------------------------------------------
def to_frame(columns: Columns) -> pd.DataFrame:
    """Numbers as int64 (float64 where missing), booleans as bool (text where missing), the rest as str."""
    arrays = {}
    for name, column in columns.items():
        data = column.data
        if pa.types.is_boolean(data.type) and data.null_count:
            data = pc.if_else(data, "true", "false")
        elif pa.types.is_null(data.type):
            data = data.cast(pa.string())
        arrays[name] = data
    if not arrays:
        return pd.DataFrame()
    return pa.table(arrays).to_pandas()
