"""The process-wide job registry (one per server process) and the training form."""
from __future__ import annotations

import streamlit as st

from typing import Callable

from engine.config import OBJECTIVES, PRESET_LABELS, RunConfig, preset
from engine.errors import UserError
from engine.jobs import JobRegistry, TrainingJob

OBJECTIVE_LABELS = {"contrastive": "Contrastive (SimCLR)", "mfp": "Masked feature prediction", "both": "Both, weighted"}


@st.cache_resource(show_spinner=False)
def registry() -> JobRegistry:
    """Shared by every session and tab, so a refresh or a second tab re-attaches to a running job."""
    return JobRegistry()


def config_form(base_preset: str) -> RunConfig:
    """Widgets for every value the analyst may set, starting from a preset; returns the validated config."""
    base = preset(base_preset) if base_preset in PRESET_LABELS else RunConfig()
    m, t = base.model, base.train
    a, b, c = st.columns(3)
    values = {
        "d_model": a.select_slider("Embedding size (d_model)", [32, 64, 128, 192, 256, 384, 512], value=m.d_model,
                                   help="Tutorial range 128-512."),
        "n_blocks": a.slider("Residual blocks", 1, 12, m.n_blocks, help="Tutorial range 4-12."),
        "dropout": a.slider("Dropout", 0.0, 0.3, float(m.dropout), 0.05, help="Tutorial range 0-0.3."),
        "batch_size": b.select_slider("Batch size", [64, 128, 256, 512, 1024], value=t.batch_size, help="Tutorial range 64-1024."),
        "lr": b.select_slider("Learning rate", [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2], value=t.lr,
                              format_func=lambda v: f"{v:g}", help="Tutorial range 1e-4 to 1e-2 (AdamW, cosine schedule)."),
        "epochs": b.number_input("Epochs", 1, 200, t.epochs),
        "temperature": c.slider("Temperature", 0.05, 0.2, float(t.temperature), 0.01, help="NT-Xent temperature; tutorial range 0.05-0.2."),
        "objective": c.selectbox("Objective", OBJECTIVES, index=OBJECTIVES.index(t.objective), format_func=OBJECTIVE_LABELS.get),
        "mfp_weight": c.slider("Masked-feature weight (in Both)", 0.0, 1.0, float(t.mfp_weight), 0.05),
        "max_rows": c.number_input("Rows to train on (0 = all)", 0, 10_000_000, t.max_rows, step=1000),
    }
    return base.with_overrides(values)


def launch(jobs: JobRegistry, doing: str, make_job: Callable[[], TrainingJob]) -> None:
    """Build a job (encoding the data: slow, so under a spinner), register it, start it, follow it."""
    try:
        with st.spinner(doing):
            job = jobs.add(make_job())
        job.start()
    except UserError as exc:
        st.error(str(exc))
        return
    st.session_state["active_run"] = job.run_id
    st.rerun()
