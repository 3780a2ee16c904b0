"""The JSON readers: JSON lines, and JSON documents (an array, one object, or objects in a row).

Each reads its input in bounded pieces and yields Segments (engine.ingest_arrow), counting rows
read and rejecting bad ones with their 1-based line number in the log. JSON lines go through
pyarrow; a piece pyarrow refuses is retried in halves, and pieces of a few hundred lines are parsed
with the json module, which can say which line is wrong and why. JSON documents are parsed with
json.JSONDecoder.raw_decode, one top-level value at a time, from a bounded text window.
"""
from __future__ import annotations

import codecs
import json
import re
from typing import BinaryIO, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from engine.ingest_arrow import ArrowJsonReader, NotArrowFriendly, Segment, records_to_segment, table_to_segment
from engine.ingest_report import ReadLog

CHUNK_BYTES = 32 << 20  # JSON lines are read this many bytes at a time (the whole file is never held)
PYTHON_LINES = 512  # a failing piece this small is parsed line by line
RECORD_BATCH = 50_000  # parsed records of a JSON document turned into columns at a time

_NULL_LINE = re.compile(rb"^[ \t]*null[ \t\r]*$", re.MULTILINE)
_RECORD_LINE = re.compile(rb"^[ \t\r]*\S", re.MULTILINE)


# ----------------------------------------------------------------------------------------------
# JSON lines
# ----------------------------------------------------------------------------------------------
def read_jsonl(stream: BinaryIO, log: ReadLog, *, chunk_bytes: int | None = None) -> Iterator[Segment]:
    parser = _JsonLinesParser(log)
    for first_line, chunk, n_newlines in _line_chunks(stream, chunk_bytes or CHUNK_BYTES):
        yield from parser.parse(first_line, chunk, n_newlines)


def _line_chunks(stream: BinaryIO, chunk_bytes: int) -> Iterator[tuple[int, bytes, int]]:
    """(number of the chunk's first line, whole lines of about chunk_bytes, newlines in them)."""
    carry = b""
    line = 1
    while True:
        block = stream.read(chunk_bytes)
        if not block:
            if carry:
                yield line, carry, carry.count(b"\n")
            return
        data = carry + block if carry else block
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        chunk, carry = data[: cut + 1], data[cut + 1 :]
        n_newlines = chunk.count(b"\n")
        yield line, chunk, n_newlines
        line += n_newlines


class _JsonLinesParser:
    def __init__(self, log: ReadLog) -> None:
        self._log = log
        self._arrow = ArrowJsonReader()

    def parse(self, first_line: int, chunk: bytes, n_newlines: int) -> Iterator[Segment]:
        try:
            segment = self._parse_arrow(chunk, n_newlines)
        except NotArrowFriendly:
            pass
        else:
            self._log.rows_read += segment.n_rows
            yield segment
            return
        middle = chunk.find(b"\n", len(chunk) // 2)
        if n_newlines <= PYTHON_LINES or middle < 0 or middle == len(chunk) - 1:
            yield self._parse_python(first_line, chunk)
            return
        left, right = chunk[: middle + 1], chunk[middle + 1 :]
        left_newlines = left.count(b"\n")
        yield from self.parse(first_line, left, left_newlines)
        yield from self.parse(first_line + left_newlines, right, n_newlines - left_newlines)

    def _parse_arrow(self, chunk: bytes, n_newlines: int) -> Segment:
        table = self._arrow.read(chunk)
        # pyarrow reads two objects on one line as two rows, and a "null" line as an empty row;
        # both would shift rows against lines, so such pieces go the careful way.
        expected = n_newlines + (0 if chunk.endswith(b"\n") else 1)
        if table.num_rows != expected and table.num_rows != len(_RECORD_LINE.findall(chunk)):
            raise NotArrowFriendly("rows do not match lines")
        if _has_empty_rows(table) and _NULL_LINE.search(chunk):
            raise NotArrowFriendly("a line holds null")
        try:
            table.validate(full=True)  # pyarrow does not check UTF-8 while parsing JSON
        except pa.ArrowException as exc:
            raise NotArrowFriendly(str(exc)) from None
        return table_to_segment(table)

    def _parse_python(self, first_line: int, chunk: bytes) -> Segment:
        records = []
        for offset, raw in enumerate(chunk.split(b"\n")):
            if not raw.strip():
                continue
            self._log.rows_read += 1
            record = _parse_line(raw, first_line + offset, self._log)
            if record is not None:
                records.append(record)
        return records_to_segment(records)


def _has_empty_rows(table: pa.Table) -> bool:
    """Rows with every top-level field missing: '{}' or a 'null' line (cheap to find, rare)."""
    if table.num_columns == 0:
        return table.num_rows > 0
    empty = None
    for column in table.columns:
        missing = column.is_null()
        empty = missing if empty is None else pc.and_(empty, missing)
    return bool(pc.any(empty).as_py())


def _parse_line(raw: bytes, line: int, log: ReadLog) -> dict | None:
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        log.reject(line, "invalid UTF-8")
        return None
    except json.JSONDecodeError as exc:
        truncated = _maybe_incomplete(exc, len(raw.rstrip()))
        log.reject(line, f"{'truncated' if truncated else 'invalid'} JSON: {exc.msg} (column {exc.colno})")
        return None
    except RecursionError:
        log.reject(line, "JSON nested too deeply")
        return None
    if not isinstance(value, dict):
        log.reject(line, f"not a JSON object (got {_json_kind(value)})")
        return None
    return value


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else type(value).__name__


# ----------------------------------------------------------------------------------------------
# JSON documents: one object, an array of objects, or objects one after another (pretty-printed)
# ----------------------------------------------------------------------------------------------
def read_json_document(stream: BinaryIO, log: ReadLog) -> Iterator[Segment]:
    records: list[dict] = []
    for line, value in _JsonValues(stream, log):
        log.rows_read += 1
        if isinstance(value, dict):
            records.append(value)
        else:
            log.reject(line, f"not a JSON object (got {_json_kind(value)})")
        if len(records) >= RECORD_BATCH:
            yield records_to_segment(records)
            records = []
    if records:
        yield records_to_segment(records)


class _JsonValues:
    """Streams the top-level values of a JSON document (the elements, if it is an array).

    json.JSONDecoder.raw_decode does the parsing (C speed); we only keep a text window.
    After a bad element we skip to the next line that opens an object at the same indent.
    """

    READ_CHARS = 8 << 20

    def __init__(self, stream: BinaryIO, log: ReadLog) -> None:
        self._reader = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stream = stream
        self._log = log
        self._text = ""
        self._pos = 0
        self._line = 1  # line number at self._pos
        self._eof = False
        self._decoder = json.JSONDecoder()
        self._replaced_noted = False

    def __iter__(self) -> Iterator[tuple[int, object]]:
        self._skip_space()
        in_array = self._peek() == "["
        if in_array:
            self._advance(1)
        indent: str | None = None
        while True:
            self._skip_space()
            char = self._peek()
            if char == "":
                if in_array:
                    self._log.note(self._line, "truncated JSON: the array is not closed")
                return
            if in_array and char == "]":
                return
            if indent is None:
                indent = self._current_indent()
            line = self._line
            value = self._decode()
            if value is _BAD:
                if not self._resync(indent):
                    return
                continue
            yield line, value
            self._skip_space()
            if in_array and self._peek() == ",":
                self._advance(1)

    def _decode(self) -> object:
        start_line = self._line
        while True:
            try:
                value, end = self._decoder.raw_decode(self._text, self._pos)
            except json.JSONDecodeError as exc:
                if not self._eof and _maybe_incomplete(exc, len(self._text)):
                    self._fill(grow=True)
                    continue
                reason = "truncated JSON" if self._eof and _maybe_incomplete(exc, len(self._text)) else "invalid JSON"
                return self._bad(start_line, f"{reason}: {exc.msg}")
            except RecursionError:
                return self._bad(start_line, "JSON nested too deeply")
            self._advance(end - self._pos)
            return value

    def _bad(self, line: int, reason: str) -> object:
        self._log.rows_read += 1
        self._log.reject(line, reason)
        return _BAD

    def _resync(self, indent: str) -> bool:
        """Move to the next line that starts an object at the elements' indent; False at the end."""
        pattern = re.compile("\n" + re.escape(indent) + r"\{")
        while True:
            found = pattern.search(self._text, self._pos + 1)
            if found:
                self._advance(found.start() + 1 - self._pos)
                return True
            if self._eof:
                return False
            self._fill(grow=True)

    # -- the text window -------------------------------------------------------------------
    def _peek(self) -> str:
        if self._pos >= len(self._text):
            self._fill()
        return self._text[self._pos : self._pos + 1]

    def _skip_space(self) -> None:
        while True:
            match = _NON_SPACE.search(self._text, self._pos)
            if match:
                self._advance(match.start() - self._pos)
                return
            self._advance(len(self._text) - self._pos)
            if self._eof:
                return
            self._fill()

    def _advance(self, n: int) -> None:
        self._line += self._text.count("\n", self._pos, self._pos + n)
        self._pos += n

    def _current_indent(self) -> str:
        line_start = self._text.rfind("\n", 0, self._pos) + 1
        before = self._text[line_start : self._pos]
        return before if not before.strip() else ""

    def _fill(self, grow: bool = False) -> None:
        if self._eof:
            return
        # Growing geometrically keeps a long element from being re-parsed many times.
        size = max(self.READ_CHARS, len(self._text) - self._pos) if grow else self.READ_CHARS
        block = self._stream.read(size)
        text = self._reader.decode(block, final=not block)
        if "\ufffd" in text and not self._replaced_noted:
            self._replaced_noted = True
            self._log.coerced(f"invalid UTF-8 bytes replaced with U+FFFD (near line {self._line})")
        self._eof = not block
        self._text = self._text[self._pos :] + text  # drop what has been consumed
        self._pos = 0


_BAD = object()
_NON_SPACE = re.compile(r"\S")


def _maybe_incomplete(exc: json.JSONDecodeError, text_length: int) -> bool:
    return exc.pos >= text_length - 1 or exc.msg.startswith("Unterminated string")
