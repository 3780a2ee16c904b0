"""Arrow helpers for ingest: nested tables -> flat segments of dotted columns.

A ``Segment`` is one block of rows (a JSONL chunk, a Parquet batch, a batch of parsed records)
already flattened: struct fields become dotted paths, arrays become ``<path>.count`` plus the
array as compact JSON text, and every column has one of the plain types int64, float64, bool,
string or null. Blocks whose values do not fit one type keep a Python list and are settled
later (engine.ingest_columns).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

JSON_BLOCK_BYTES = 4 << 20  # pyarrow parses blocks in parallel; a line longer than this falls back to Python
COUNT_SUFFIX = ".count"

Part = pa.Array | pa.ChunkedArray | list  # a list holds Python values of mixed types


@dataclass
class Segment:
    n_rows: int
    columns: dict[str, Part] = field(default_factory=dict)
    array_columns: set[str] = field(default_factory=set)  # JSON text of arrays (with a generated .count)
    mixed_list_columns: set[str] = field(default_factory=set)  # arrays mixed with scalars in one column

    def add(self, name: str, part: Part) -> None:
        # Two spellings of one path in one record (nested and dotted): the first one wins.
        self.columns.setdefault(name, part)


class NotArrowFriendly(Exception):
    """This block cannot go through the fast Arrow path; the caller falls back to Python."""


# ----------------------------------------------------------------------------------------------
# Arrow tables -> segments
# ----------------------------------------------------------------------------------------------
def table_to_segment(table: pa.Table) -> Segment:
    segment = Segment(n_rows=table.num_rows)
    for name, column in zip(table.column_names, table.columns):
        _emit(segment, name, column)
    return segment


def _emit(segment: Segment, name: str, column: pa.ChunkedArray) -> None:
    kind = column.type
    if pa.types.is_struct(kind):
        for child_field, child in zip(kind, column.flatten()):  # flatten() carries the parent's nulls
            _emit(segment, f"{name}.{child_field.name}", child)
    elif pa.types.is_dictionary(kind):
        _emit(segment, name, pc.cast(column, kind.value_type))
    elif _is_nested(kind):
        _emit_array(segment, name, column)
    else:
        segment.add(name, plain_column(column))


def _is_nested(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind) or pa.types.is_map(kind)


def _emit_array(segment: Segment, name: str, column: pa.ChunkedArray) -> None:
    if pa.types.is_map(column.type) or pa.types.is_fixed_size_list(column.type):
        counts = pa.chunked_array([pa.array([None if v is None else len(v) for v in chunk.to_pylist()], pa.int64()) for chunk in column.chunks], pa.int64())
    else:
        counts = pc.list_value_length(column).cast(pa.int64())
    segment.add(name, pa.chunked_array([json_text(chunk) for chunk in column.chunks], pa.string()))
    if name + COUNT_SUFFIX not in segment.columns:
        segment.add(name + COUNT_SUFFIX, counts.fill_null(0))
    segment.array_columns.add(name)


def plain_column(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Cast a leaf column to one of the plain types: int64, float64, bool, string, null."""
    kind = column.type
    if pa.types.is_null(kind) or pa.types.is_boolean(kind) or kind == pa.int64() or kind == pa.float64() or kind == pa.string():
        return column
    if pa.types.is_integer(kind):
        if kind == pa.uint64() and len(column) and (pc.max(column).as_py() or 0) >= 2**63:
            return pc.cast(column, pa.float64(), safe=False)  # beyond int64: approximate, like JSON readers do
        return pc.cast(column, pa.int64())
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return pc.cast(column, pa.float64())
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pc.cast(column, pa.string())
    if pa.types.is_timestamp(kind):
        # Parquet datetimes: ISO-8601 text, like ISO strings in JSON (schema inference detects them).
        return pc.replace_substring(pc.cast(column, pa.string()), " ", "T", max_replacements=1)
    if pa.types.is_date(kind) or pa.types.is_time(kind):
        return pc.cast(column, pa.string())
    if pa.types.is_duration(kind):
        return pc.cast(column, pa.int64())
    values = column.to_pylist()
    return pa.array([None if v is None else _as_text(v) for v in values], pa.string())


def _as_text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


# ----------------------------------------------------------------------------------------------
# Arrays as compact JSON text, built with Arrow kernels (json.dumps per row is the slow part)
# ----------------------------------------------------------------------------------------------
_CONTROL_CHARS = r"[\x00-\x1f]"


def json_text(array: pa.Array) -> pa.Array:
    """Each value as compact JSON (object members that are null left out); null stays null."""
    try:
        return _json_text_arrow(array)
    except (NotArrowFriendly, pa.ArrowException):
        values = array.to_pylist()
        if pa.types.is_map(array.type):  # Arrow gives maps as lists of (key, value) pairs
            values = [None if v is None else dict(v) for v in values]
        return pa.array([None if v is None else compact_json(v) for v in values], pa.string())


def _json_text_arrow(array: pa.Array) -> pa.Array:
    kind = array.type
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = array.cast(pa.string())
        if pc.any(pc.match_substring_regex(text, _CONTROL_CHARS)).as_py():
            raise NotArrowFriendly("control characters need JSON escapes")
        text = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
        return pc.binary_join_element_wise('"', text, '"', "")
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind):
        return array.cast(pa.string())
    if pa.types.is_floating(kind):
        if pc.all(pc.is_finite(array)).as_py() is False:
            raise NotArrowFriendly("NaN and infinity have no JSON spelling")
        return array.cast(pa.float64()).cast(pa.string())
    if pa.types.is_struct(kind):
        return _struct_json(array)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        elements = _json_text_arrow(array.values).fill_null("null")
        list_type = pa.ListArray if pa.types.is_list(kind) else pa.LargeListArray
        texts = list_type.from_arrays(array.offsets, elements, mask=array.is_null())
        return pc.binary_join_element_wise("[", pc.binary_join(texts, ","), "]", "")
    if pa.types.is_dictionary(kind):
        return _json_text_arrow(pc.cast(array, kind.value_type))
    raise NotArrowFriendly(f"no Arrow JSON writer for {kind}")


def _struct_json(array: pa.StructArray) -> pa.Array:
    members = []
    for child_field, child in zip(array.type, array.flatten()):
        key = json.dumps(child_field.name, ensure_ascii=False) + ":"
        members.append(pc.binary_join_element_wise(key, _json_text_arrow(child), ""))
    if members:
        body = pc.binary_join_element_wise(*members, ",", null_handling="skip")
    else:
        body = pa.array([""] * len(array), pa.string())
    text = pc.binary_join_element_wise("{", body, "}", "")
    return pc.if_else(array.is_null(), pa.scalar(None, pa.string()), text)


def compact_json(value: Any) -> str:
    """The Python twin of the Arrow writer: compact, UTF-8, null object members left out."""
    return json.dumps(_drop_null_members(value), separators=(",", ":"), ensure_ascii=False, default=str)


def _drop_null_members(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _drop_null_members(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_null_members(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------
# Parsed records (Python dicts) -> segments
# ----------------------------------------------------------------------------------------------
def records_to_segment(records: list[dict]) -> Segment:
    """Arrow infers one struct type over all records (fast); mixed types fall back to plain Python."""
    if not records:
        return Segment(n_rows=0)
    try:
        structs = pa.array(records)
        return table_to_segment(pa.Table.from_struct_array(structs))
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return flatten_records(records)


def flatten_records(records: list[dict]) -> Segment:
    flat_rows = [dict(_walk(record, "")) for record in records]
    segment = Segment(n_rows=len(records))
    names = dict.fromkeys(name for row in flat_rows for name in row)
    for name in names:
        _add_python_column(segment, name, [row.get(name) for row in flat_rows])
    return segment


def _walk(value: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, Mapping):
            yield from _walk(item, path + ".")
        else:
            yield path, item


def _add_python_column(segment: Segment, name: str, values: list) -> None:
    is_list = [isinstance(v, list) for v in values]
    if any(is_list):
        if all(flag or v is None for flag, v in zip(is_list, values)):
            segment.add(name, _array_json_text(values))
            segment.add(name + COUNT_SUFFIX, pa.array([len(v) if v is not None else 0 for v in values], pa.int64()))
            segment.array_columns.add(name)
            return
        segment.mixed_list_columns.add(name)
        segment.add(name, values)  # settled (lists become JSON text) when the column is assembled
        return
    try:
        segment.add(name, plain_column(pa.array(values)))
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        segment.add(name, values)


def _array_json_text(values: list) -> pa.Array:
    try:
        return json_text(pa.array(values))
    except (pa.ArrowException, OverflowError, TypeError, ValueError):  # mixed types inside the arrays
        return pa.array([None if v is None else compact_json(v) for v in values], pa.string())


# ----------------------------------------------------------------------------------------------
# pyarrow's JSON reader, with ISO strings kept as text
# ----------------------------------------------------------------------------------------------
class ArrowJsonReader:
    """Reads newline-delimited JSON buffers with pyarrow.

    pyarrow turns ISO-8601 strings into timestamps; we keep them as the text they were
    (schema inference detects them), so fields it typed as timestamps are read again as strings.
    The overrides carry over to later buffers of the same file.
    """

    def __init__(self) -> None:
        self._text_fields: dict[tuple[str, ...], None] = {}

    def read(self, buffer: bytes | pa.Buffer) -> pa.Table:
        table = self._read(buffer)
        timestamp_paths = list(_timestamp_paths(table.schema))
        if timestamp_paths:
            self._text_fields.update(dict.fromkeys(timestamp_paths))
            inferred = table.schema
            table = _in_field_order(self._read(buffer), inferred)  # explicit fields come first otherwise
        return table

    def _read(self, buffer: bytes | pa.Buffer) -> pa.Table:
        options = pj.ParseOptions(explicit_schema=self._schema(), unexpected_field_behavior="infer")
        source = pa.BufferReader(buffer)
        try:
            return pj.read_json(source, read_options=pj.ReadOptions(block_size=JSON_BLOCK_BYTES), parse_options=options)
        except pa.ArrowException as exc:
            raise NotArrowFriendly(str(exc)) from None

    def _schema(self) -> pa.Schema | None:
        if not self._text_fields:
            return None
        return pa.schema([pa.field(name, kind) for name, kind in _nest(list(self._text_fields)).items()])


def _in_field_order(table: pa.Table, reference: pa.Schema) -> pa.Table:
    names = [n for n in reference.names if n in table.column_names]
    names += [n for n in table.column_names if n not in names]
    columns = []
    for name in names:
        column = table.column(name)
        if pa.types.is_struct(column.type) and name in reference.names and pa.types.is_struct(reference.field(name).type):
            column = pa.chunked_array([_struct_in_order(chunk, reference.field(name).type) for chunk in column.chunks])
        columns.append(column)
    return pa.table(columns, names=names)


def _struct_in_order(array: pa.StructArray, reference: pa.StructType) -> pa.StructArray:
    fields = {array.type.field(i).name: (array.type.field(i), array.field(i)) for i in range(array.type.num_fields)}
    order = [f.name for f in reference if f.name in fields] + [n for n in fields if reference.get_field_index(n) < 0]
    children = []
    for name in order:
        child_field, child = fields[name]
        index = reference.get_field_index(name)
        if pa.types.is_struct(child.type) and index >= 0 and pa.types.is_struct(reference.field(index).type):
            child = _struct_in_order(child, reference.field(index).type)
        children.append(child)
    return pa.StructArray.from_arrays(children, names=order, mask=array.is_null() if array.null_count else None)


def _timestamp_paths(schema: Iterable[pa.Field], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for item in schema:
        path = prefix + (item.name,)
        if pa.types.is_timestamp(item.type):
            yield path
        elif pa.types.is_struct(item.type):
            yield from _timestamp_paths(item.type, path)


def _nest(paths: list[tuple[str, ...]]) -> dict[str, pa.DataType]:
    """("a", "b", "t") -> {"a": struct<b: struct<t: string>>}, merging shared parents."""
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = None

    def to_type(node: dict[str, Any]) -> dict[str, pa.DataType]:
        return {k: pa.string() if v is None else pa.struct([pa.field(n, t) for n, t in to_type(v).items()]) for k, v in node.items()}

    return to_type(tree)
