"""The sidebar: where the analyst is in the workflow and what is loaded."""
from __future__ import annotations

import streamlit as st

from ui import state


def render_sidebar() -> None:
    with st.sidebar:
        data = state.dataset()
        schema = state.schema()
        if data is None:
            st.caption("No events loaded yet.")
            return
        st.caption(f"**{data.source}**")
        st.caption(f"{data.rows:,} events · {len(data.frame.columns)} columns")
        if schema is not None:
            n_inputs = len(schema.numeric) + len(schema.categorical) + len(schema.timestamp)
            st.caption(f"{n_inputs} model inputs · {len(schema.labels)} label columns")
