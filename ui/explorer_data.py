"""What the Explorer computes, cached: the loaded run, embeddings, projections, scorecard, anomaly scores.

Embeddings and projections are cached on disk in the run folder (keyed by run, checkpoint, data
fingerprint and parameters) and in memory for the server process; slow work runs in ui.background.
"""
from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from engine import project
from engine.explore import OUTCOME
from engine.embed import embed
from engine.ocsf import outcome_label
from engine.runs import LoadedRun, checkpoint_path, load_run
from ui import background
from ui.state import Dataset

ANOMALY = "anomaly score"
TOP_VALUES = 12
HOVER_FIELDS = ("class_name", "activity_name", "status", "user.name", "actor.user.name", "src_endpoint.ip",
                "dst_endpoint.ip", "dst_endpoint.port", "http_request.url.path", "api.operation", "process.name",
                "_label.scenario")


@dataclass(frozen=True)
class Target:
    """A run, a checkpoint and a dataset: what every cached result depends on."""

    run_dir: str
    checkpoint: str  # "best" | "last"
    checkpoint_id: str  # changes when the checkpoint file changes
    data_id: str  # fingerprint of the events frame

    @property
    def cache_dir(self) -> Path:
        return Path(self.run_dir) / "cache"


def target_for(run_dir, checkpoint: str, data: Dataset) -> Target:
    path, which = checkpoint_path(run_dir, checkpoint)
    return Target(str(run_dir), which, project.checkpoint_identity(path), _frame_fingerprint(data))


def _frame_fingerprint(data: Dataset) -> str:
    cache = st.session_state.setdefault("_fingerprints", {})
    key = (data.source, data.rows, id(data.frame))
    if key not in cache:
        cache[key] = project.data_fingerprint(data.frame)
    return cache[key]


@st.cache_resource(show_spinner=False, max_entries=2)
def loaded(run_dir: str, checkpoint: str, checkpoint_id: str) -> LoadedRun:
    return load_run(run_dir, checkpoint)


def embeddings(target: Target, frame: pd.DataFrame) -> np.ndarray:
    """The embeddings of every event, from the disk cache or computed now with a progress bar."""
    memory = st.session_state.setdefault("_embeddings", {})
    if target in memory:
        return memory[target]
    cache = project.ProjectionCache(target.cache_dir, max_entries=16)
    key = project.ProjectionKey.make(target.run_dir, target.checkpoint_id, target.data_id, "embedding", {})
    emb = cache.get(key)
    if emb is None:
        run = loaded(target.run_dir, target.checkpoint, target.checkpoint_id)
        bar = st.progress(0.0, text="Embedding the events...")
        emb = embed(run, frame, on_progress=lambda done, total: bar.progress(done / total, text=f"Embedding {done:,} of {total:,} events"))
        bar.empty()
        cache.put(key, emb)
    memory.clear()  # one dataset's embeddings per session is plenty
    memory[target] = emb
    return emb


def pca_map(target: Target, emb: np.ndarray, dims: int) -> np.ndarray:
    memory = st.session_state.setdefault("_pca", {})
    key = (target, dims)
    if key not in memory:
        memory.clear()
        memory[key] = project.pca_2d(emb, n_components=dims)
    return memory[key]


def _umap_task(target: Target, emb: np.ndarray, params: project.UmapParams, labels: np.ndarray) -> np.ndarray:
    cache = project.ProjectionCache(target.cache_dir)
    key = project.ProjectionKey.make(target.run_dir, target.checkpoint_id, target.data_id, "umap",
                                     {**params.to_dict(), "stratify": OUTCOME})
    coords = cache.get(key)
    if coords is None:
        coords = project.umap_project(emb, params, labels=labels)
        cache.put(key, coords)
    return coords


def umap_map(target: Target, emb: np.ndarray, params: project.UmapParams, labels: np.ndarray) -> Future:
    return background.submit(("umap", target, params), _umap_task, target, emb, params, labels)


def evaluation(target: Target, frame: pd.DataFrame, emb: np.ndarray, label: str, anomaly_label: str | None,
               scorer: str) -> Future:
    """A future of the scorecard, both baselines and anomaly metrics (engine.explore.evaluate_run)."""
    from engine.explore import evaluate_run

    run = loaded(target.run_dir, target.checkpoint, target.checkpoint_id)
    return background.submit(("evaluate", target, label, anomaly_label, scorer), evaluate_run, run, frame,
                             label=label, anomaly_label=anomaly_label, scorer=scorer, embeddings=emb)


def anomaly_scores(target: Target, emb: np.ndarray, scorer: str) -> Future:
    """A future of engine.explore.AnomalyScores for the embeddings (kNN distance, LOF or Isolation Forest)."""
    from engine.explore import anomaly_scores as score

    return background.submit(("anomaly", target, scorer), score, emb, scorer)


# -- colouring and hover ----------------------------------------------------------------------
def colour_values(frame: pd.DataFrame, column: str, scores: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """(values, kind): outcome words, top values + "other", a numeric scale, or anomaly scores."""
    if column == OUTCOME:
        return outcome_label(frame).to_numpy(dtype=object), "categorical"
    if column == ANOMALY:
        return np.asarray(scores, dtype=float), "numeric"
    series = frame[column]
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) and series.nunique() > TOP_VALUES:
        return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float), "numeric"
    texts = series.astype("string").fillna("<NA>")
    top = texts.value_counts().head(TOP_VALUES).index
    return texts.where(texts.isin(top), "other").to_numpy(dtype=object), "categorical"


def hover_text(frame: pd.DataFrame) -> np.ndarray:
    """One line per key OCSF field the data has, per event (vectorised string building)."""
    memory = st.session_state.setdefault("_hover", {})
    key = (id(frame), len(frame))
    if key not in memory:
        memory.clear()
        fields = [f for f in HOVER_FIELDS if f in frame.columns]
        text = pd.Series("row " + pd.Series(np.arange(len(frame))).astype(str).to_numpy(), index=frame.index)
        for field in fields:
            text = text + f"<br>{field}: " + frame[field].astype("string").fillna("-")
        memory[key] = text.to_numpy(dtype=object)
    return memory[key]


def selected_rows(event) -> list[int]:
    """Dataset row numbers of the points a plotly selection event names (customdata holds the row)."""
    try:
        points = event.selection.points if hasattr(event, "selection") else event["selection"]["points"]
    except (KeyError, AttributeError, TypeError):
        return []
    rows = []
    for point in points or []:
        custom = point.get("customdata") if isinstance(point, dict) else None
        if isinstance(custom, (list, tuple)):
            custom = custom[0] if custom else None
        if custom is not None:
            rows.append(int(custom))
    return sorted(set(rows))
