"""Loading events for the UI: files, uploads and the bundled demo, with the schema inferred."""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import streamlit as st

from engine.errors import UserError
from engine.ingest import load
from engine.sample import generate_file
from engine.schema import Schema, infer_schema
from ui.state import Dataset, demo_path

DEMO_EVENTS = 72_000
DEMO_SEED = 0


def ensure_demo_file() -> Path:
    """The demo dataset on disk (``make run`` generates it; generate here if someone deleted it)."""
    path = demo_path()
    if not path.exists():
        generate_file(path, DEMO_EVENTS, DEMO_SEED)
    return path


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_path_cached(path: str, mtime_ns: int, size: int) -> tuple[Dataset, Schema]:
    frame, report = load(path)
    return Dataset(frame=frame, report=report, source=path), infer_schema(frame)


def load_path(path: str | os.PathLike) -> tuple[Dataset, Schema]:
    """Load a file on the server; cached on (path, mtime, size) so reopening is instant. Read-only frame."""
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise UserError(f"{resolved}: no such file")
    stat = resolved.stat()
    return _load_path_cached(str(resolved.resolve()), stat.st_mtime_ns, stat.st_size)


def load_upload(handle: BinaryIO, name: str) -> tuple[Dataset, Schema]:
    frame, report = load(handle, name=name)
    return Dataset(frame=frame, report=report, source=name), infer_schema(frame)


def load_demo() -> tuple[Dataset, Schema]:
    return load_path(ensure_demo_file())
