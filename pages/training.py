"""Training: start a run on a background worker, watch it learn, stop it, resume it, compare runs."""
import dataclasses

import streamlit as st

from engine.config import PRESET_LABELS
from engine.errors import UserError
from engine.jobs import TrainingJob
from engine.runs import list_runs
from engine.train import data_for_run, prepare_data
from ui import state
from ui.jobs import config_form, launch, registry
from ui.training_view import compare_section, live_panel

st.title("Training")
jobs = registry()
data, schema = state.dataset(), state.schema()

with st.expander("New run", expanded=not jobs.running()):
    if data is None or schema is None:
        st.info("Load events on the Data page first; training uses the schema and augmentation settings from there.")
    else:
        choice = st.radio("Preset", [*PRESET_LABELS, "custom"], horizontal=True,
                          format_func=lambda k: PRESET_LABELS.get(k, "Custom"),
                          help="Quick demo finishes on the 72,000-event demo data in about a minute on a laptop CPU.")
        try:
            # The augmentation settings previewed on the Augmentation page live in the schema.
            config = dataclasses.replace(config_form(choice), augment=schema.augment)
        except UserError as exc:
            st.error(str(exc))
            config = None
        name = st.text_input("Run name", value=PRESET_LABELS.get(choice, "custom run"))
        if config is not None and st.button("Start training", type="primary", icon=":material/play_arrow:"):
            launch(jobs, "Encoding the events...", lambda: TrainingJob.create(
                state.runs_dir(), name, config, prepare_data(data.frame, schema, config, source=data.source)))

active = jobs.get(st.session_state.get("active_run", "")) or jobs.latest()
if active is not None:
    st.subheader(f"Run {active.run_id}")
    live_panel(active)

runs = list_runs(state.runs_dir())
st.subheader("All runs")
if not runs:
    st.caption("No runs yet.")
else:
    compare_section(runs)
    resumable = [r for r in runs if r.status in ("stopped", "failed") and r.has_checkpoint]
    if resumable and data is not None:
        left, right = st.columns([3, 1])
        pick = left.selectbox("Resume a stopped run", [r.run_id for r in resumable])
        if right.button("Resume", icon=":material/replay:"):
            launch(jobs, "Encoding the events with the run's own encoder...", lambda: TrainingJob.resume(
                state.runs_dir() / pick, data_for_run(state.runs_dir() / pick, data.frame, source=data.source)))
