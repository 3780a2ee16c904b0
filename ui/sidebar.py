"""The sidebar: what is loaded, and whether a training run is going on."""
from __future__ import annotations

import streamlit as st

from ui import state
from ui.jobs import registry


def render_sidebar() -> None:
    with st.sidebar:
        data = state.dataset()
        schema = state.schema()
        if data is None:
            st.caption("No events loaded yet.")
        else:
            st.caption(f"**{data.source}**")
            st.caption(f"{data.rows:,} events · {len(data.frame.columns)} columns")
            if schema is not None:
                n_inputs = len(schema.numeric) + len(schema.categorical) + len(schema.timestamp)
                st.caption(f"{n_inputs} model inputs · {len(schema.labels)} label columns")
        for job in registry().running():
            snap = job.snapshot()
            where = f"epoch {min(snap.epoch + 1, snap.n_epochs)} of {snap.n_epochs}" if snap.n_steps else "starting"
            st.caption(f":material/model_training: training **{snap.run_id}** · {where}")
