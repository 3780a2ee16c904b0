"""Explorer: the embedding map, whether outcomes separate, selections, neighbours and anomalies."""
import numpy as np
import streamlit as st

from engine.errors import UserError
from engine.explore import default_anomaly_column
from engine.project import UmapParams, sample_rows
from engine.runs import list_runs
from ui import state
from ui.background import error_message
from ui.explorer_data import (ANOMALY, OUTCOME, anomaly_scores, colour_values, embeddings, evaluation, hover_text,
                              pca_map, selected_rows, target_for, umap_map)
from ui.explorer_view import render_anomalies, render_neighbours, render_scorecard, render_selection
from ui.figures import embedding_map

MAX_POINTS = 150_000  # WebGL draws every point below this; above it a stratified sample, always labelled

st.title("Explorer")
st.session_state["explorer_opened"] = True
data = state.dataset()
runs = [r for r in list_runs(state.runs_dir()) if r.has_checkpoint]
if data is None or not runs:
    st.info("Load events on the Data page and train a model on the Training page first.")
    st.stop()

left, mid, right = st.columns([3, 1, 1])
run = left.selectbox("Run", runs, format_func=lambda r: f"{r.name} · {r.run_id} · {r.status}")
checkpoint = mid.radio("Checkpoint", ["best", "last"], horizontal=True)
dims = right.radio("Map", [2, 3], horizontal=True, format_func=lambda d: f"{d}-D")
try:
    target = target_for(run.run_dir, checkpoint, data)
    emb = embeddings(target, data.frame)
except UserError as exc:
    st.error(str(exc))
    st.stop()

frame = data.frame
columns = [OUTCOME, ANOMALY, *frame.columns]
colour_by = st.selectbox("Colour by", columns, format_func=lambda c: "Outcome (status_id: Success / Failure / Other)" if c == OUTCOME else c)
with st.expander("UMAP settings"):
    a, b, c = st.columns(3)
    params = UmapParams(n_components=dims, n_neighbors=a.slider("n_neighbors", 5, 100, 15), min_dist=b.slider("min_dist", 0.0, 0.99, 0.1, 0.01),
                        seed=int(c.number_input("seed", 0, 10_000, 0)))
outcome_codes, _ = colour_values(frame, OUTCOME)
umap_future = umap_map(target, emb, params, outcome_codes)
scorer = st.radio("Anomaly scorer", ["knn", "lof", "iforest"], horizontal=True,
                  format_func={"knn": "kNN distance (k=20)", "lof": "Local Outlier Factor", "iforest": "Isolation Forest"}.get,
                  help="Scored on the embeddings: colours the map when you colour by 'anomaly score', "
                       "and gives the AUROC / PR-AUC below.")
anomaly_future = anomaly_scores(target, emb, scorer) if colour_by == ANOMALY else None


def _map_pending() -> bool:
    return not umap_future.done() or (anomaly_future is not None and not anomaly_future.done())


map_pending_at_start = _map_pending()


@st.fragment(run_every=1.0 if map_pending_at_start else None)
def map_section():
    if map_pending_at_start and not _map_pending():
        st.rerun()  # the background work ended: one full run draws the result and stops the polling
    if umap_future.done() and umap_future.exception() is None:
        coords, method = umap_future.result(), "UMAP"
    else:
        coords, method = pca_map(target, emb, dims), "PCA"
        problem = error_message(umap_future) if umap_future.done() else None
        st.caption(f"UMAP failed: {problem}" if problem else "PCA map shown; the UMAP map replaces it when ready (computing in the background).")
    scored = anomaly_future is not None and anomaly_future.done() and anomaly_future.exception() is None
    scores = anomaly_future.result().scores if scored else None
    if scored and anomaly_future.result().note:
        st.caption(anomaly_future.result().note)
    if colour_by == ANOMALY and scores is None:
        st.caption("Scoring anomalies in the background...")
        values, kind = colour_values(frame, OUTCOME)
    else:
        values, kind = colour_values(frame, colour_by, scores)
    rows = np.arange(len(frame)) if len(frame) <= MAX_POINTS else sample_rows(len(frame), MAX_POINTS, 0, values if kind == "categorical" else None)
    st.caption(f"{method} map · {len(rows):,} of {len(frame):,} events shown")
    event = st.plotly_chart(embedding_map(coords[rows], rows, values[rows], kind=kind, hover=hover_text(frame)[rows]),
                            width="stretch", on_select="rerun", selection_mode=("points", "box", "lasso"), key=f"map_{method}_{dims}")
    picked = selected_rows(event)
    if len(picked) == 1:
        render_neighbours(frame, emb, picked[0])
    elif picked:
        render_selection(frame, picked)
    else:
        st.caption("Box- or lasso-select points to see them as events; click one point to see its nearest neighbours.")
    if colour_by == ANOMALY and scores is not None:
        st.subheader("Most anomalous events")
        render_anomalies(frame, scores)


map_section()

st.subheader("Does the outcome separate?")
labels = state.schema().labels if state.schema() else []
left, right = st.columns(2)
label = left.selectbox("Score the separation of", [OUTCOME, *labels], format_func=lambda c: "Outcome (status_id)" if c == OUTCOME else c)
default_truth = default_anomaly_column(frame)
truth_options = [None, *dict.fromkeys([default_truth, *labels] if default_truth else labels)]
anomaly_label = right.selectbox("Anomaly label (for AUROC / PR-AUC)", truth_options, index=truth_options.index(default_truth),
                                format_func=lambda c: "none" if c is None else c)
report_future = evaluation(target, frame, emb, label, anomaly_label, scorer)


report_pending_at_start = not report_future.done()


@st.fragment(run_every=1.0 if report_pending_at_start else None)
def scorecard_section():
    if report_pending_at_start and report_future.done():
        st.rerun()  # one full run renders the scorecard and stops the polling
    if not report_future.done():
        st.caption("Computing the scorecard in the full embedding space, with both baselines...")
        st.progress(0.5, text="silhouette, kNN accuracy, Davies-Bouldin, stability")
        return
    problem = error_message(report_future)
    if problem:
        st.error(f"Could not score this run: {problem}")
        return
    render_scorecard(report_future.result().to_dict())


scorecard_section()
