"""Read an event file into a flat DataFrame of dotted OCSF paths, with a report of what was kept.

    frame, report = load("events.jsonl.gz")

Formats: JSON array or object, JSON lines (.jsonl, .ndjson), CSV, Parquet (nested structs too),
each optionally gzip-compressed. The file is read in bounded pieces (pyarrow where it can, the json
module where a piece needs line-by-line care), so a file of a gigabyte is never held as text.

The frame has one column per dotted path (``src_endpoint.ip``); arrays become ``<path>.count``
(int) and ``<path>`` (compact JSON text); numbers are int64/float64, booleans bool (text where
missing), everything else str. Kept rows keep their order. Bad rows are skipped and reported with
their line; input that cannot be read at all raises IngestError with one line naming the file.

The helpers live beside this module: ingest_source (opening, format), ingest_read / ingest_tables (the readers),
ingest_arrow (nested -> flat), ingest_columns (types), ingest_names (dotted names, JSON text).
"""
from __future__ import annotations

import logging
import os
import time
from typing import BinaryIO, Iterator

import pandas as pd
import pyarrow as pa

from engine.ingest_arrow import Segment
from engine.ingest_columns import assemble, to_frame, type_text_columns
from engine.ingest_names import normalise, split_underscored
from engine.ingest_read import read_json_document, read_jsonl
from engine.ingest_report import IngestError, IngestReport, Problem, ReadLog, one_line
from engine.ingest_source import Source, display_name, open_source
from engine.ingest_tables import read_csv, read_parquet

__all__ = ["IngestError", "IngestReport", "Problem", "load", "split_underscored"]

log = logging.getLogger(__name__)

_NOTHING_READ = {
    "csv": "has a header but no data rows",
    "parquet": "has no rows",
    "json": "holds no JSON objects",
    "jsonl": "holds no JSON lines",
}


def load(source: str | os.PathLike | BinaryIO, *, name: str | None = None) -> tuple[pd.DataFrame, IngestReport]:
    """Read ``source`` (a path, or a binary file object whose ``name``/``name=`` gives the file name)."""
    started = time.perf_counter()
    tally = ReadLog(display_name(source, name))
    with open_source(source, name) as opened:
        segments = _read_all(opened, tally)
    _refuse_if_nothing_kept(opened.format, tally)
    columns = assemble(segments, tally)
    del segments
    if opened.format == "csv":
        type_text_columns(columns, tally)
    frame = to_frame(normalise(columns, tally))
    if frame.shape[1] == 0:
        raise tally.error("holds no fields: every record is empty")
    kept = tally.rows_read - tally.rows_rejected
    if len(frame) != kept:  # a reader bug, not bad input
        raise RuntimeError(f"ingest of {tally.source} produced {len(frame)} rows but counted {kept} kept")
    report = IngestReport(
        source=tally.source,
        format=opened.format,
        compressed=opened.compressed,
        rows_read=tally.rows_read,
        rows_kept=kept,
        rows_rejected=tally.rows_rejected,
        problems=tuple(tally.problems),
        coercions=tuple(tally.coercions),
        renamed=tuple(tally.renamed),
        seconds=time.perf_counter() - started,
    )
    log.info("%s: %d rows read, %d kept, %d rejected, %d columns in %.2f s",
             report.source, report.rows_read, report.rows_kept, report.rows_rejected, frame.shape[1], report.seconds)
    return frame, report


def _read_all(opened: Source, tally: ReadLog) -> list[Segment]:
    try:
        return [segment for segment in _segments(opened, tally) if segment.n_rows]
    except IngestError:
        raise
    except (pa.ArrowException, RecursionError, UnicodeError, MemoryError) as exc:
        raise tally.error(f"cannot read as {opened.format}: {one_line(str(exc) or type(exc).__name__)}") from None


def _segments(opened: Source, tally: ReadLog) -> Iterator[Segment]:
    if opened.format == "jsonl":
        return read_jsonl(opened.stream, tally)
    if opened.format == "json":
        return read_json_document(opened.stream, tally)
    if opened.format == "csv":
        return read_csv(opened.stream, tally, opened.reopen)
    return read_parquet(opened.random_access(), tally)


def _refuse_if_nothing_kept(fmt: str, tally: ReadLog) -> None:
    if tally.rows_read == 0:
        raise tally.error(_NOTHING_READ[fmt])
    if tally.rows_read == tally.rows_rejected:
        first = tally.problems[0] if tally.problems else Problem(None, "unknown")
        where = f"line {first.line}: " if first.line is not None else ""
        raise tally.error(f"every row was rejected ({tally.rows_read} read); first: {where}{first.reason}")
