"""Plotly figure builders (Streamlit-free: pages pass the figures to st.plotly_chart)."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

POLICY_COLOURS = {
    "protected": "#9ca3af", "none": "#d1d5db", "jitter": "#2563eb", "swap": "#16a34a",
    "mask": "#ca8a04", "time_jitter": "#7c3aed",
}
OVERRIDDEN_COLOUR = "#dc2626"


def change_rate_chart(diagnostics: Sequence) -> go.Figure:
    """One horizontal bar per input field: the share of cells a view changed, coloured by policy."""
    names = [d.name for d in diagnostics]
    rates = [d.change_rate for d in diagnostics]
    colours = [OVERRIDDEN_COLOUR if d.overridden else POLICY_COLOURS.get(d.policy.value, "#6b7280") for d in diagnostics]
    hover = [
        f"{d.name}<br>policy: {d.policy.value}{' (protection overridden)' if d.overridden else ''}"
        f"<br>change rate: {d.change_rate:.1%}"
        + (f"<br>mean relative change: {d.mean_rel_change:.1%}" if d.mean_rel_change is not None and d.type.value == "numeric" else "")
        + (f"<br>mean shift: {d.mean_rel_change:.1f} s" if d.mean_rel_change is not None and d.type.value == "timestamp" else "")
        for d in diagnostics
    ]
    fig = go.Figure(go.Bar(x=rates, y=names, orientation="h", marker_color=colours, hovertext=hover, hoverinfo="text"))
    fig.update_layout(
        height=max(260, 22 * len(names) + 80), margin=dict(l=10, r=10, t=30, b=10),
        xaxis=dict(title="share of cells changed in a view", tickformat=".0%", rangemode="tozero"),
        yaxis=dict(autorange="reversed"), title="Change rate per field",
    )
    return fig


# ---------------------------------------------------------------------------------------------
# Training curves, from metrics records (dicts with kind "start" | "step" | "epoch")
# ---------------------------------------------------------------------------------------------
PART_COLOURS = {"contrastive": "#16a34a", "mfp": "#ca8a04", "mfp_cat": "#f59e0b", "mfp_num": "#a16207"}
MAX_STEP_POINTS = 2_000  # thin long histories so a live chart stays light


def _thin(records: list[dict]) -> list[dict]:
    stride = max(1, len(records) // MAX_STEP_POINTS)
    return records[::stride] if stride > 1 else records


def training_curves(records: Sequence[dict]) -> go.Figure:
    """Train loss per step, validation loss per epoch, each objective's part, and the learning rate."""
    from plotly.subplots import make_subplots

    steps = _thin([r for r in records if r.get("kind") == "step"])
    epochs = [r for r in records if r.get("kind") == "epoch"]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.06)
    x = [r["step"] for r in steps]
    fig.add_trace(go.Scatter(x=x, y=[r["loss"] for r in steps], name="train loss", line=dict(color="#2563eb")), row=1, col=1)
    parts = sorted({k for r in steps for k in r.get("parts", {})} - {"loss"})
    for part in parts:
        values = [r.get("parts", {}).get(part) for r in steps]
        if any(v for v in values):
            fig.add_trace(go.Scatter(x=x, y=values, name=part, line=dict(color=PART_COLOURS.get(part), width=1, dash="dot")), row=1, col=1)
    val = [(r["step"], r["val_loss"]) for r in epochs if r.get("val_loss") is not None]
    if val:
        fig.add_trace(go.Scatter(x=[s for s, _ in val], y=[v for _, v in val], name="validation loss", mode="lines+markers",
                                 line=dict(color="#dc2626", width=2), marker=dict(size=8)), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=[r["lr"] for r in steps], name="learning rate", line=dict(color="#6b7280")), row=2, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="lr", tickformat=".1e", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    fig.update_layout(height=460, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=1.08), uirevision="keep")
    return fig


def compare_runs_chart(histories: dict[str, Sequence[dict]]) -> go.Figure:
    """Overlay several runs: validation loss per epoch (solid) and train loss per epoch (dotted)."""
    fig = go.Figure()
    for name, records in histories.items():
        epochs = [r for r in records if r.get("kind") == "epoch"]
        x = [r["epoch"] for r in epochs]
        trace = fig.add_trace(go.Scatter(x=x, y=[r.get("val_loss") for r in epochs], name=f"{name} · validation", mode="lines+markers"))
        colour = trace.data[-1].line.color
        fig.add_trace(go.Scatter(x=x, y=[r.get("train_loss") for r in epochs], name=f"{name} · train", mode="lines",
                                 line=dict(dash="dot", color=colour)))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="epoch", yaxis_title="loss",
                      legend=dict(orientation="h", y=1.12))
    return fig


def collapse_chart(epochs: Sequence[dict]) -> go.Figure:
    """Per-epoch collapse diagnostics: embedding spread and the positive-vs-negative cosine gap."""
    x = [r["epoch"] for r in epochs]
    fig = go.Figure()
    for key, name in (("std_mean", "mean per-dimension std"), ("std_min", "min per-dimension std"),
                      ("cosine_gap", "positive - negative cosine")):
        values = [r.get("collapse", {}).get(key) for r in epochs]
        if any(v is not None for v in values):
            fig.add_trace(go.Scatter(x=x, y=values, name=name, mode="lines+markers"))
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="epoch", legend=dict(orientation="h", y=1.2))
    return fig


# ---------------------------------------------------------------------------------------------
# The embedding map
# ---------------------------------------------------------------------------------------------
OUTCOME_COLOURS = {"Success": "#16a34a", "Failure": "#dc2626", "Other": "#9ca3af"}
QUALITATIVE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16",
               "#f97316", "#6366f1", "#14b8a6", "#a855f7"]
OTHER_COLOUR = "#d1d5db"


def embedding_map(coords, rows, colour, *, kind: str, hover, title: str = "") -> go.Figure:
    """A WebGL scatter of ``coords`` ([n, 2] or [n, 3]) for dataset ``rows`` (customdata = row number).

    ``kind`` "categorical": ``colour`` holds strings, one trace per value (legend, outcome colours);
    "numeric": ``colour`` holds floats on a continuous scale.
    """
    import numpy as np

    three_d = coords.shape[1] == 3
    scatter = go.Scatter3d if three_d else go.Scattergl
    marker_size = 2 if three_d else 4
    fig = go.Figure()

    def axes(idx):
        xyz = {"x": coords[idx, 0], "y": coords[idx, 1]}
        if three_d:
            xyz["z"] = coords[idx, 2]
        return xyz

    if kind == "numeric":
        values = np.asarray(colour, dtype=float)
        fig.add_trace(scatter(**axes(slice(None)), mode="markers", customdata=rows, hovertext=hover, hoverinfo="text",
                              marker=dict(size=marker_size, color=values, colorscale="Viridis", showscale=True, opacity=0.8),
                              name=title or "value"))
    else:
        values = np.asarray(colour, dtype=object)
        order = sorted(set(values), key=lambda v: (v == "other", v not in OUTCOME_COLOURS, str(v)))
        for i, value in enumerate(order):
            idx = np.flatnonzero(values == value)
            colour_of = OUTCOME_COLOURS.get(value, OTHER_COLOUR if value == "other" else QUALITATIVE[i % len(QUALITATIVE)])
            fig.add_trace(scatter(**axes(idx), mode="markers", customdata=rows[idx], hovertext=hover[idx], hoverinfo="text",
                                  marker=dict(size=marker_size, color=colour_of, opacity=0.75), name=f"{value} ({len(idx):,})"))
    fig.update_layout(height=620, margin=dict(l=0, r=0, t=30 if title else 10, b=0), title=title or None,
                      legend=dict(itemsizing="constant", orientation="h", y=-0.05), dragmode="lasso" if not three_d else "orbit",
                      xaxis=dict(showticklabels=False, title=None), yaxis=dict(showticklabels=False, title=None))
    return fig


def anomaly_histogram(scores, threshold: float) -> go.Figure:
    fig = go.Figure(go.Histogram(x=scores, nbinsx=80, marker_color="#6b7280"))
    fig.add_vline(x=threshold, line_color="#dc2626", line_dash="dash", annotation_text="threshold")
    fig.update_layout(height=220, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="anomaly score", yaxis_title="events",
                      bargap=0.02)
    return fig
