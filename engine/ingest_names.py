"""One name per OCSF field: dotted paths, whatever spelling the file used.

Files arrive nested (already dotted by the readers), flattened with underscores
(``src_endpoint_ip``), or with whole objects as JSON text in a column (``metadata`` =
'{"product": {...}}'), sometimes all three in one file. We split underscore names only where the
prefix is a known OCSF object (``status_id`` and ``bytes_in`` stay), parse JSON-text columns into
dotted columns, and keep one column where two spellings meet.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.ingest_arrow import COUNT_SUFFIX, ArrowJsonReader, NotArrowFriendly, Segment, compact_json, json_text, records_to_segment, table_to_segment
from engine.ingest_columns import Column, Columns, assemble
from engine.ingest_report import ReadLog
from engine.ocsf import OBJECT_NAMES, canonical_path

_SAMPLE = 64  # values looked at before checking a whole column for JSON text
# OCSF's copy of the original event: JSON text by design, not an object to spread into columns.
KEEP_AS_TEXT = frozenset({"raw_data"})


def split_underscored(name: str, *, scalar_names: frozenset[str] = frozenset()) -> str:
    """``actor_user_name`` -> ``actor.user.name``; ``status_id``, ``bytes_in`` unchanged.

    The table of OCSF object names is engine.ocsf's (one table for ingest and schema inference).
    ``scalar_names`` are top-level columns holding plain values: a file with a text column
    ``service`` means ``service_version`` is not a member of a ``service`` object.
    """
    if "." in name or "_" not in name:
        return name
    dotted = canonical_path(name)
    if dotted.split(".", 1)[0] in scalar_names:
        return name
    return dotted


@dataclass
class _Entry:
    name: str
    column: Column
    position: int
    original: bool  # a column of the file, not parsed out of JSON text


def normalise(columns: Columns, log: ReadLog) -> Columns:
    json_kinds = {name: kind for name, column in columns.items() if (kind := json_text_kind(name, column))}
    scalar_names = frozenset(n for n, c in columns.items() if n in OBJECT_NAMES and n not in json_kinds and not c.is_array)
    entries: list[_Entry] = []
    for name, column in columns.items():
        new_name = split_underscored(name, scalar_names=scalar_names)
        if new_name != name:
            log.rename(f"{name} -> {new_name}")
        if name in json_kinds:
            entries.extend(_expand(new_name, column, json_kinds[name], len(entries), log))
        else:
            entries.append(_Entry(new_name, column, len(entries), original=True))
    return _deduplicate(entries, log)


# ----------------------------------------------------------------------------------------------
# JSON text in a column
# ----------------------------------------------------------------------------------------------
def json_text_kind(name: str, column: Column) -> str | None:
    """'object' or 'array' when every non-empty value is JSON text of that shape."""
    data = column.data
    if data.type != pa.string() or column.is_array or column.non_null == 0 or name.rsplit(".", 1)[-1] in KEEP_AS_TEXT:
        return None
    sample = data.drop_null().slice(0, _SAMPLE).to_pylist()
    first = next((v.strip() for v in sample if v.strip()), "")
    opener, closer, kind = ("{", "}", "object") if first.startswith("{") else ("[", "]", "array")
    if not first.startswith(opener) or not _parses(first):
        return None  # e.g. a Windows GUID "{0000...}" is braces, not JSON
    text = pc.utf8_trim_whitespace(data)
    present = pc.and_(pc.is_valid(text), pc.not_equal(text, ""))
    shaped = pc.and_(pc.starts_with(text, opener), pc.ends_with(text, closer))
    n_present = pc.sum(pc.cast(present, pa.int64())).as_py() or 0
    n_shaped = pc.sum(pc.cast(pc.and_(present, shaped), pa.int64())).as_py() or 0
    return kind if n_present and n_shaped == n_present else None


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _expand(name: str, column: Column, kind: str, position: int, log: ReadLog) -> list[_Entry]:
    parsed = _parse_objects(name, column.data, log) if kind == "object" else _parse_arrays(column.data)
    if parsed is None:
        log.coerced(f"{name}: looks like JSON {kind}s but not every value parses; kept as text")
        return [_Entry(name, column, position, original=True)]
    entries = [
        _Entry(f"{name}.{sub}" if kind == "object" else name + sub, sub_column, position + i, original=False)
        for i, (sub, sub_column) in enumerate(parsed.items())
    ]
    for entry in entries:
        entry.column.parsed_from = name
    shown = ", ".join(e.name for e in entries[:6]) + (", ..." if len(entries) > 6 else "")
    log.rename(f"{name} (JSON text) -> {len(entries)} column{'s' if len(entries) != 1 else ''}: {shown}")
    return entries


def _parse_objects(name: str, data: pa.ChunkedArray, log: ReadLog) -> Columns | None:
    text = pc.utf8_trim_whitespace(data.combine_chunks())
    text = pc.if_else(pc.or_kleene(pc.is_null(text), pc.equal(text, "")), "{}", text)
    segment = _objects_with_arrow(text)
    if segment is None:
        segment = _objects_with_python(text)
    if segment is None:
        return None
    inner = ReadLog(name)
    columns = assemble([segment], inner)
    for message in inner.coercions:  # name the fields by their full path
        log.coerced(f"{name}.{message}")
    return columns


def _objects_with_arrow(text: pa.Array) -> Segment | None:
    if pc.any(pc.match_substring(text, "\n")).as_py():
        return None  # pretty-printed values would break the one-object-per-line reading
    lines = pc.binary_join_element_wise(text, "\n", "")
    # The values buffer of a string array is its strings end to end: newline-delimited JSON.
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
    buffer = lines.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    try:
        table = ArrowJsonReader().read(buffer)
        table.validate(full=True)
    except (NotArrowFriendly, pa.ArrowException):
        return None
    return table_to_segment(table) if table.num_rows == len(text) else None


def _objects_with_python(text: pa.Array) -> Segment | None:
    records = []
    for value in text.to_pylist():
        try:
            record = json.loads(value)
        except (ValueError, RecursionError):
            return None
        if not isinstance(record, dict):
            return None
        records.append(record)
    return records_to_segment(records)


def _parse_arrays(data: pa.ChunkedArray) -> Columns | None:
    values = []
    for value in data.to_pylist():
        if value is None or not value.strip():
            values.append(None)
            continue
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return None
        if not isinstance(parsed, list):
            return None
        values.append(parsed)
    try:
        texts = json_text(pa.array(values))
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        texts = pa.array([None if v is None else compact_json(v) for v in values], pa.string())
    counts = pa.array([0 if v is None else len(v) for v in values], pa.int64())
    return {"": Column(pa.chunked_array([texts]), is_array=True), COUNT_SUFFIX: Column(pa.chunked_array([counts]))}


# ----------------------------------------------------------------------------------------------
# Two spellings of one field
# ----------------------------------------------------------------------------------------------
def _same_field_key(name: str) -> str:
    # error_message (a flat column) and error.message (parsed from the JSON in "error") are one field.
    return name.replace(".", "_")


def _deduplicate(entries: list[_Entry], log: ReadLog) -> Columns:
    groups: dict[str, list[_Entry]] = {}
    for entry in entries:
        groups.setdefault(_same_field_key(entry.name), []).append(entry)
    kept: list[tuple[int, str, Column]] = []
    for group in groups.values():
        if len(group) == 1:
            kept.append((group[0].position, group[0].name, group[0].column))
            continue
        keeper = min(group, key=lambda e: (not e.column.is_typed, not e.original, -e.column.non_null, e.position))
        originals = [e for e in group if e.original]
        name = (originals[0] if originals else keeper).name
        data = keeper.column.data
        for other in group:
            if other is keeper:
                continue
            data, filled = _fill_gaps(data, other.column.data)
            gaps = f", filled {filled} gaps from it" if filled else ""
            where = f"the JSON in {other.column.parsed_from}" if other.column.parsed_from else "another column"
            twin = "also" if other.name == name else f"as {other.name}"
            log.rename(f"{name}: {twin} in {where}; kept one column{gaps}")
        keeper.column.data = data
        kept.append((min(e.position for e in group), name, keeper.column))
    kept.sort(key=lambda item: item[0])
    return {name: column for _, name, column in kept}


def _fill_gaps(data: pa.ChunkedArray, other: pa.ChunkedArray) -> tuple[pa.ChunkedArray, int]:
    """Values the kept column lacks, taken from its twin when both hold the same kind of value."""
    if not data.null_count or other.null_count == len(other):
        return data, 0
    try:
        other = other.cast(data.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return data, 0
    merged = pc.coalesce(data, other)
    return merged, data.null_count - merged.null_count
