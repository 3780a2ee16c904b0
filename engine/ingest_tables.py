"""The tabular readers: CSV (pyarrow, or the csv module where a row needs locating) and Parquet.

Like engine.ingest_read, each yields Segments and counts rows read and rejected in the log;
CSV problems carry their 1-based line number.
"""
from __future__ import annotations

import codecs
import csv
import io
from typing import BinaryIO, Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from engine.ingest_arrow import NotArrowFriendly, Segment, table_to_segment
from engine.ingest_report import ReadLog, one_line

RECORD_BATCH = 50_000  # rows of the Python CSV reader turned into columns at a time
CSV_BLOCK_BYTES = 16 << 20
PARQUET_BATCH_ROWS = 256 << 10
PANDAS_INDEX_PREFIX = "__index_level_"


# ----------------------------------------------------------------------------------------------
# CSV
# ----------------------------------------------------------------------------------------------
def read_csv(stream: BinaryIO, log: ReadLog, reopen: Callable[[], BinaryIO]) -> Iterator[Segment]:
    header, delimiter = _csv_header(stream)
    if not header:
        raise log.error("file is empty")
    try:
        segments = _read_csv_arrow(stream, header, delimiter, log)
    except NotArrowFriendly:
        log.rows_read = log.rows_rejected = 0
        log.problems.clear()
        yield from _read_csv_python(reopen(), header, delimiter, log)
        return
    yield from segments


def _csv_header(stream: BinaryIO) -> tuple[list[str], str]:
    head = stream.peek(1 << 20)[: 1 << 20] if hasattr(stream, "peek") else b""
    text = head.decode("utf-8-sig", errors="replace")
    first_line = text.split("\n", 1)[0]
    # Comma unless the header plainly uses semicolons or tabs (European spreadsheets, TSV exports).
    delimiter = next((d for d in (",", ";", "\t") if d in first_line), ",")
    try:
        row = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
    except csv.Error:  # a stray carriage return or NUL in the header: read the first line as it is
        row = first_line.replace("\r", "").split(delimiter)
    return unique_names(row), delimiter


def unique_names(row: list[str]) -> list[str]:
    """Header cells as column names: blank ones get a position name, repeats a suffix."""
    names: list[str] = []
    seen: set[str] = set()
    for position, cell in enumerate(row, start=1):
        name = cell.strip() or f"column_{position}"
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        names.append(candidate)
    return names


def _read_csv_arrow(stream: BinaryIO, header: list[str], delimiter: str, log: ReadLog) -> list[Segment]:
    segments: list[Segment] = []

    def on_invalid_row(row: pcsv.InvalidRow) -> str:
        # With one parsing thread pyarrow knows the row number (header = 1); it equals the line
        # number unless quoted values span lines.
        log.rows_read += 1
        log.reject(row.number, f"expected {row.expected_columns} fields, got {row.actual_columns}")
        return "skip"

    options = dict(
        read_options=pcsv.ReadOptions(column_names=header, skip_rows=1, block_size=CSV_BLOCK_BYTES, use_threads=False),
        parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid_row),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in header},  # typed later, over the whole file
            strings_can_be_null=True,
            null_values=["", "null", "NULL", "NaN", "nan", "None"],
        ),
    )
    try:
        reader = pcsv.open_csv(io.BufferedReader(_Utf8Checked(stream), buffer_size=1 << 20), **options)
        for batch in reader:
            log.rows_read += batch.num_rows
            segments.append(table_to_segment(pa.Table.from_batches([batch])))
    except (pa.ArrowInvalid, _InvalidUtf8) as exc:  # the Python reader can say which row is wrong
        raise NotArrowFriendly(str(exc)) from None
    return segments


class _InvalidUtf8(Exception):
    pass


class _Utf8Checked(io.RawIOBase):
    """Checks UTF-8 as pyarrow reads: its invalid-row handler cannot be given undecodable text."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        try:
            self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise _InvalidUtf8(str(exc)) from None
        buffer[: len(data)] = data
        return len(data)


def _read_csv_python(stream: BinaryIO, header: list[str], delimiter: str, log: ReadLog) -> Iterator[Segment]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    next(reader, None)
    rows: list[dict] = []
    start_line = reader.line_num + 1
    for row in reader:
        line, start_line = start_line, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        log.rows_read += 1
        if len(row) != len(header):
            log.reject(line, f"expected {len(header)} fields, got {len(row)}")
        elif any(_has_surrogates(cell) for cell in row):
            log.reject(line, "invalid UTF-8")
        else:
            rows.append({name: (cell if cell != "" else None) for name, cell in zip(header, row)})
        if len(rows) >= RECORD_BATCH:
            yield _text_rows_segment(rows, header)
            rows = []
    text.detach()
    if rows:
        yield _text_rows_segment(rows, header)


def _has_surrogates(cell: str) -> bool:
    try:
        cell.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _text_rows_segment(rows: list[dict], header: list[str]) -> Segment:
    table = pa.table({name: pa.array([row[name] for row in rows], pa.string()) for name in header})
    return table_to_segment(table)


# ----------------------------------------------------------------------------------------------
# Parquet
# ----------------------------------------------------------------------------------------------
def read_parquet(file: BinaryIO, log: ReadLog) -> Iterator[Segment]:
    try:
        parquet = pq.ParquetFile(file)
        columns = [name for name in parquet.schema_arrow.names if not name.startswith(PANDAS_INDEX_PREFIX)]
        dropped = len(parquet.schema_arrow.names) - len(columns)
        if dropped:
            log.rename(f"dropped {dropped} pandas index column(s) ({PANDAS_INDEX_PREFIX}*)")
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            log.rows_read += batch.num_rows
            yield table_to_segment(pa.Table.from_batches([batch]))
    except (pa.ArrowException, OSError) as exc:
        raise log.error(f"cannot read Parquet: {one_line(str(exc))}") from None
