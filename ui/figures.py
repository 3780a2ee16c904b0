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
