"""Session-state keys and the one place pages read and write them.

Pages never poke ``st.session_state`` with string literals: they call these helpers, so the
workflow (data -> schema -> augmentation -> training -> explorer) has one definition.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from engine.ingest import IngestReport
from engine.schema import Schema

ROOT = Path(__file__).resolve().parent.parent


def demo_path() -> Path:
    """The bundled demo file; OCSF_STUDIO_DEMO points the app (and its tests) elsewhere."""
    return Path(os.environ.get("OCSF_STUDIO_DEMO", ROOT / "data" / "demo" / "ocsf_demo.parquet"))


def runs_dir() -> Path:
    """Where training runs live; OCSF_STUDIO_RUNS points the app (and its tests) elsewhere."""
    return Path(os.environ.get("OCSF_STUDIO_RUNS", ROOT / "runs"))


DATASET = "dataset"
SCHEMA = "schema"


@dataclass(frozen=True)
class Dataset:
    """What the Data page loaded: the flat frame, how it was read, and where from."""

    frame: pd.DataFrame
    report: IngestReport
    source: str

    @property
    def rows(self) -> int:
        return len(self.frame)


def dataset() -> Dataset | None:
    return st.session_state.get(DATASET)


def schema() -> Schema | None:
    return st.session_state.get(SCHEMA)


def set_dataset(data: Dataset, inferred: Schema) -> None:
    st.session_state[DATASET] = data
    st.session_state[SCHEMA] = inferred


def set_schema(new: Schema) -> None:
    st.session_state[SCHEMA] = new


def workflow_steps() -> list[tuple[str, bool]]:
    """(step, done) in the order an analyst walks them."""
    data = dataset()
    sch = schema()
    return [
        ("Load events", data is not None),
        ("Type the columns", sch is not None),
        ("Check augmentation", bool(st.session_state.get("augment_reviewed"))),
        ("Train a model", any(runs_dir().glob("*/status.json"))),
        ("Explore embeddings", bool(st.session_state.get("explorer_opened"))),
    ]
