"""Opening what the user gave us: a path or a binary file object (Streamlit's UploadedFile).

Decides the format from the file name (.json, .jsonl, .ndjson, .csv, .parquet, each optionally
.gz), sniffs the content where the name leaves it open (JSON array vs JSON lines), recognises gzip
by its magic bytes, and turns unreadable input (missing, empty, binary, corrupt gzip) into an
IngestError with one line naming the file.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tempfile
import zlib
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import PurePath
from typing import BinaryIO, Iterator

from engine.ingest_report import IngestError, one_line

EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
SNIFF_BYTES = 64 << 10
SPOOL_BYTES = 64 << 20  # non-seekable uploads are copied to a temp file, in memory up to this size
BINARY_SHARE = 0.10  # a head with more undecodable bytes than this is not text
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
KNOWN_BINARY = {
    b"\x89PNG": "a PNG image",
    b"%PDF": "a PDF document",
    b"PK\x03\x04": "a ZIP archive",
    b"\x7fELF": "an executable",
    b"GIF8": "a GIF image",
    b"\xff\xd8\xff": "a JPEG image",
    PARQUET_MAGIC: "a Parquet file (name it .parquet)",
}
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass
class Source:
    display: str  # the file name as the user knows it: used in every message
    format: str
    compressed: bool
    stream: BinaryIO  # decompressed bytes, from the start
    _raw: BinaryIO
    _stack: ExitStack

    def reopen(self) -> BinaryIO:
        """The decompressed bytes again from the start (a reader that must start over)."""
        self._raw.seek(0)
        stream: BinaryIO = self._raw
        if self.compressed:
            stream = self._stack.enter_context(gzip.GzipFile(fileobj=self._raw, mode="rb"))
        return io.BufferedReader(_GuardedReader(stream, self.display), buffer_size=1 << 20)

    def random_access(self) -> BinaryIO:
        """A seekable file of the decompressed bytes (Parquet reads its footer first)."""
        if not self.compressed:
            self._raw.seek(0)
            return self._raw
        spool = self._stack.enter_context(tempfile.TemporaryFile())
        shutil.copyfileobj(self.stream, spool, 1 << 20)
        spool.seek(0)
        return spool


def display_name(source: object, name: str | None) -> str:
    if name:
        return str(name)
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    given = getattr(source, "name", None)
    return given if isinstance(given, str) and given else "<uploaded file>"


def format_from_name(display: str) -> tuple[str | None, bool]:
    """(format or None when the name has no extension, named .gz)."""
    path = PurePath(display.lower())
    gz = path.suffix == ".gz"
    if gz:
        path = path.with_suffix("")
    if not path.suffix:
        return None, gz
    if path.suffix not in EXTENSIONS:
        raise IngestError.about(display, f"unknown file type {path.suffix!r}; expected .json, .jsonl, .ndjson, .csv or .parquet (optionally .gz)")
    return EXTENSIONS[path.suffix], gz


@contextmanager
def open_source(source: str | os.PathLike | BinaryIO, name: str | None = None) -> Iterator[Source]:
    display = display_name(source, name)
    with ExitStack() as stack:
        raw = _seekable(_open_raw(source, display, stack), stack)
        hint, named_gz = format_from_name(display)
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if named_gz and not compressed:
            raise IngestError.about(display, "named .gz but is not gzip-compressed (no gzip header)")
        stream: BinaryIO = raw
        if compressed:
            stream = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        guarded = io.BufferedReader(_GuardedReader(stream, display), buffer_size=1 << 20)
        head = _read_head(guarded)
        fmt = decide_format(display, hint, head)
        yield Source(display, fmt, compressed, guarded, raw, stack)


def _open_raw(source: object, display: str, stack: ExitStack) -> BinaryIO:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise IngestError.about(display, "file not found")
        if os.path.isdir(path):
            raise IngestError.about(display, "is a directory, not a file")
        try:
            return stack.enter_context(open(path, "rb"))
        except OSError as exc:
            raise IngestError.about(display, f"cannot open ({exc.strerror or exc})") from None
    if not hasattr(source, "read"):
        raise TypeError(f"source must be a path or a binary file object, got {type(source).__name__}")
    stream = source  # type: ignore[assignment]
    if _is_seekable(stream):
        stream.seek(0)  # an upload may have been read already (a preview)
    if isinstance(stream.read(0), str):
        raise IngestError.about(display, "was opened in text mode; pass a binary file object")
    return stream


def _is_seekable(stream: object) -> bool:
    try:
        return bool(stream.seekable())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _seekable(stream: BinaryIO, stack: ExitStack) -> BinaryIO:
    if _is_seekable(stream):
        return stream
    spool = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))
    shutil.copyfileobj(stream, spool, 1 << 20)
    spool.seek(0)
    return spool  # type: ignore[return-value]


def _read_head(stream: io.BufferedReader) -> bytes:
    head = stream.peek(SNIFF_BYTES)
    return head[:SNIFF_BYTES]


class _GuardedReader(io.RawIOBase):
    """Turns decompression failures, wherever they happen (pyarrow calls read() too), into IngestError."""

    def __init__(self, stream: BinaryIO, display: str) -> None:
        self._stream = stream
        self._display = display

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        try:
            if hasattr(self._stream, "readinto"):
                return self._stream.readinto(buffer) or 0
            data = self._stream.read(len(buffer))
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise IngestError.about(self._display, f"corrupt or truncated gzip data ({exc})") from None
        except OSError as exc:
            raise IngestError.about(self._display, f"read failed ({exc})") from None
        buffer[: len(data)] = data
        return len(data)


# ----------------------------------------------------------------------------------------------
# Format decision
# ----------------------------------------------------------------------------------------------
def decide_format(display: str, hint: str | None, head: bytes) -> str:
    if hint is None and head.startswith(PARQUET_MAGIC):
        return "parquet"
    if hint == "parquet":
        if not head.startswith(PARQUET_MAGIC):
            raise IngestError.about(display, "is not a Parquet file (no PAR1 header)" if head.strip() else "file is empty")
        return "parquet"
    _refuse_unreadable_text(display, hint, head)
    sniffed = sniff_json(head, hint)
    if hint == "csv":
        return "csv"
    if hint in ("json", "jsonl"):
        return sniffed or hint
    if sniffed:
        return sniffed
    # No extension and not JSON: a comma in the first line is too weak a sign of CSV (any prose has one).
    raise IngestError.about(display, "has no file extension and is not JSON; name it .json, .jsonl, .csv or .parquet")


def _refuse_unreadable_text(display: str, hint: str | None, head: bytes) -> None:
    kind = hint or "text"
    if not head.strip():
        raise IngestError.about(display, "file is empty")
    if head.startswith(UTF16_BOMS):
        raise IngestError.about(display, "is UTF-16 text; save it as UTF-8")
    for magic, what in KNOWN_BINARY.items():
        if head.startswith(magic):
            raise IngestError.about(display, f"looks like {what}, not {kind}")
    if b"\x00" in head or _undecodable_share(head) > BINARY_SHARE:
        raise IngestError.about(display, f"looks like a binary file, not {kind}")


def _undecodable_share(head: bytes) -> float:
    text = head.decode("utf-8", errors="replace")
    return text.count("\ufffd") / max(len(text), 1)


def sniff_json(head: bytes, hint: str | None = None) -> str | None:
    """'json' for an array or a pretty-printed document, 'jsonl' for one object per line, None if unsure.

    A first line that is not a whole object means a pretty-printed document, unless the name says
    JSON lines and the next line is a whole object (then the first line is just a bad line).
    """
    start = head.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip()
    if start.startswith(b"["):
        return "json"
    if not start.startswith(b"{"):
        return None
    lines = [line for line in start.split(b"\n", 2)[:2] if line.strip()]
    complete_line = len(start.split(b"\n", 1)) > 1 or len(head) < SNIFF_BYTES
    if not complete_line:
        return None  # the first line is longer than we looked at
    if _is_object(lines[0]):
        return "jsonl"
    if hint == "jsonl" and len(lines) > 1 and _is_object(lines[1]):
        return "jsonl"
    return "json"


def _is_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def describe(exc: BaseException) -> str:
    return one_line(str(exc) or type(exc).__name__)
