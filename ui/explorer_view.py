"""Explorer widgets: the scorecard, the selection table and its contrast, neighbours, anomalies."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from engine import evaluate
from engine.evaluate import THRESHOLDS, traffic_light

LIGHT_STYLES = {"good": "background-color: #dcfce7", "fair": "background-color: #fef9c3",
                "poor": "background-color: #fee2e2", None: ""}
METRICS = {"silhouette": "Silhouette (cosine)", "knn_accuracy": "kNN accuracy (k=10, CV)",
           "davies_bouldin": "Davies-Bouldin", "stability": "Stability (5% noise)"}
COLUMNS = {"scorecard": "Trained model", "raw": "Raw encoded features", "untrained": "Untrained network"}
SELECTION_ROWS_SHOWN = 500
DIFF_STYLE = "background-color: #fde68a"


def _light(card: dict, metric: str) -> str | None:
    """The traffic light of one metric (kNN's follows balanced accuracy, as engine.evaluate decides)."""
    value = card.get("knn_balanced_accuracy") if metric == "knn_accuracy" else card.get(metric)
    return traffic_light(metric, value)


def _cell(card: dict, metric: str) -> str:
    value = card.get(metric)
    if value is None:
        return "n/a"
    light = _light(card, metric)
    extra = f" (balanced {card['knn_balanced_accuracy']:.3f})" if metric == "knn_accuracy" and card.get("knn_balanced_accuracy") is not None else ""
    return f"{value:.3f}{extra} · {light or 'n/a'}"


def scorecard_table(report: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metrics as rows; the trained model beside both baselines. Returns (values, traffic lights)."""
    cards = {"scorecard": report["scorecard"], **report["baselines"]}
    index = list(METRICS.values())
    table = pd.DataFrame({COLUMNS[name]: [_cell(card, m) for m in METRICS] for name, card in cards.items()}, index=index)
    lights = pd.DataFrame({COLUMNS[name]: [_light(card, m) for m in METRICS] for name, card in cards.items()}, index=index)
    table["Threshold"] = [f"{'>' if THRESHOLDS[m]['higher_is_better'] else '<'} {THRESHOLDS[m]['good']}" for m in METRICS]
    lights["Threshold"] = None
    return table, lights


def render_scorecard(report: dict) -> None:
    st.markdown(f"**{report['verdict']}**")
    table, lights = scorecard_table(report)
    styles = lights.apply(lambda column: column.map(LIGHT_STYLES))
    st.dataframe(table.style.apply(lambda _: styles, axis=None), width="stretch")
    st.caption("Green: past the tutorial series' threshold; yellow: close; red: far. The kNN light follows balanced "
               "accuracy, so a rare class (few failures) has to be found too.")
    reasons = report["scorecard"].get("reasons") or {}
    for metric, why in reasons.items():
        st.caption(f"{METRICS.get(metric, metric)}: {why}")
    for note in report.get("notes", []):
        st.caption(f"Note: {note}")
    anomaly = report.get("anomaly")
    if anomaly:
        a, b, c = st.columns(3)
        a.metric(f"AUROC ({anomaly['scorer']} on embeddings)", f"{anomaly['auroc']:.3f}" if anomaly.get("auroc") is not None else "n/a")
        b.metric("PR-AUC", f"{anomaly['pr_auc']:.3f}" if anomaly.get("pr_auc") is not None else "n/a")
        c.metric("AUROC, Isolation Forest on raw features", f"{anomaly['raw_isolation_forest_auroc']:.3f}"
                 if anomaly.get("raw_isolation_forest_auroc") is not None else "n/a")
        if anomaly.get("auroc") is not None and anomaly["auroc"] < 0.5:
            st.caption("AUROC below 0.5: the labelled anomalies sit in denser neighbourhoods than normal events "
                       "(attacks that come in bursts look alike), so distance-based scores rank them low. "
                       "Try the Isolation Forest scorer.")


def downloads(frame: pd.DataFrame, stem: str) -> None:
    left, right = st.columns(2)
    left.download_button("Export CSV", frame.to_csv(index=True).encode(), file_name=f"{stem}.csv", mime="text/csv",
                         icon=":material/download:", key=f"csv_{stem}")
    right.download_button("Export JSONL", frame.to_json(orient="records", lines=True, date_format="iso").encode(),
                          file_name=f"{stem}.jsonl", mime="application/x-ndjson", icon=":material/download:", key=f"jsonl_{stem}")


def render_selection(frame: pd.DataFrame, rows: list[int]) -> None:
    selected = frame.iloc[rows]
    st.markdown(f"**{len(rows):,} events selected**")
    mask = np.zeros(len(frame), dtype=bool)
    mask[rows] = True
    differences = evaluate.contrast(frame, mask)
    if not differences.empty:
        st.caption("What is different about the selection (over-represented values, shifted numeric fields):")
        st.dataframe(differences, hide_index=True, width="stretch", height=260)
    st.dataframe(selected.head(SELECTION_ROWS_SHOWN), width="stretch", height=300)
    if len(rows) > SELECTION_ROWS_SHOWN:
        st.caption(f"First {SELECTION_ROWS_SHOWN:,} of {len(rows):,} shown; the exports hold them all.")
    downloads(selected, "selection")


def neighbours_table(frame: pd.DataFrame, row: int, neighbour_rows: np.ndarray, similarities: np.ndarray):
    """The clicked event beside its nearest neighbours (fields as rows), cells that differ highlighted."""
    columns = [c for c in frame.columns if frame[c].notna().iloc[[row, *neighbour_rows]].any()]
    table = pd.DataFrame({f"row {row} (clicked)": frame.iloc[row][columns].astype(str)})
    for other, sim in zip(neighbour_rows, similarities):
        table[f"row {other} (cos {sim:.2f})"] = frame.iloc[int(other)][columns].astype(str)
    differs = table.ne(table.iloc[:, 0], axis=0)
    styles = differs.replace({True: DIFF_STYLE, False: ""})
    return table.style.apply(lambda _: styles, axis=None)


def render_neighbours(frame: pd.DataFrame, emb: np.ndarray, row: int, k: int = 5) -> None:
    idx, sims = evaluate.neighbours(emb, row, k)
    st.markdown(f"**Event {row} and its {k} nearest neighbours** in the full embedding space (highlighted: differs from the clicked event)")
    st.dataframe(neighbours_table(frame, row, idx, sims), width="stretch", height=420)


def render_anomalies(frame: pd.DataFrame, scores: np.ndarray, top_n: int = 50) -> None:
    from ui.figures import anomaly_histogram

    share = st.slider("Flag the top share of events as anomalous", 0.001, 0.10, 0.02, 0.001, format="%.3f")
    threshold = float(np.quantile(scores, 1 - share))
    flagged = np.flatnonzero(scores >= threshold)
    st.plotly_chart(anomaly_histogram(scores, threshold), width="stretch")
    st.caption(f"{len(flagged):,} events at or above the threshold {threshold:.4f}")
    order = flagged[np.argsort(-scores[flagged])]
    top = frame.iloc[order].assign(anomaly_score=scores[order])
    st.dataframe(top.head(top_n), width="stretch", height=300)
    downloads(top, "anomalies")
