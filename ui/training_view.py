"""Training page widgets: the live panel (a fragment that polls the job) and the run comparison."""
from __future__ import annotations

from typing import Sequence

import streamlit as st

from engine.jobs import JobSnapshot, TrainingJob
from engine.runs import RunInfo, read_metrics
from ui.figures import collapse_chart, compare_runs_chart, training_curves
from ui.run_table import config_diff, runs_frame

REFRESH_S = 1.0


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def status_header(snap: JobSnapshot) -> None:
    progress = snap.step / snap.n_steps if snap.n_steps else 0.0
    st.progress(min(progress, 1.0), text=f"{snap.status.value} · epoch {min(snap.epoch + (0 if snap.done else 1), snap.n_epochs)} of {snap.n_epochs} "
                                        f"· step {snap.step:,} of {snap.n_steps:,}")
    a, b, c, d = st.columns(4)
    a.metric("Records / s", f"{snap.records_per_s:,.0f}" if snap.records_per_s else "-")
    b.metric("ETA", "done" if snap.done else _eta(snap.eta_s))
    c.metric("Device", snap.device or "starting...", help=f"precision: {snap.precision}" if snap.precision else None)
    d.metric("Best validation loss", f"{snap.best_val_loss:.4f}" if snap.best_val_loss is not None else "-")
    if snap.gpu_mem_mb is not None:
        st.caption(f"GPU memory: {snap.gpu_mem_mb:,.0f} MB")


def final_state(snap: JobSnapshot) -> None:
    if snap.status.value == "failed":
        st.error(f"Training failed: {snap.error or 'unknown error'}. The last good checkpoint is kept in {snap.run_dir}.",
                 icon=":material/error:")
    elif snap.status.value == "stopped":
        st.warning(f"Stopped after {snap.epoch} epoch(s); the last checkpoint is kept. Resume it from the run list below.")
    elif snap.status.value == "done":
        st.success(f"Done: {snap.epoch} epochs, best validation loss {snap.best_val_loss:.4f}." if snap.best_val_loss is not None
                   else f"Done: {snap.epoch} epochs.")


def live_panel(job: TrainingJob) -> None:
    """Polls the job once a second while it runs; one full rerun renders the final state when it ends."""
    running = not job.snapshot().done

    @st.fragment(run_every=REFRESH_S if running else None)
    def panel() -> None:
        snap = job.snapshot()
        status_header(snap)
        if not snap.done:
            if st.button("Stop", icon=":material/stop:", disabled=snap.stop_requested, key=f"stop_{job.run_id}"):
                job.request_stop()
                st.rerun(scope="fragment")
            if snap.stop_requested:
                st.caption("Stopping after the step in flight...")
        records = [r.to_json() for r in snap.history]
        if records:
            st.plotly_chart(training_curves(records), width="stretch", key=f"curves_{job.run_id}")
        else:
            st.caption("Waiting for the first step...")
        if snap.epochs:
            with st.expander("Collapse diagnostics", expanded=False):
                st.caption("A healthy embedding keeps spread in every dimension and a clear gap between positive-pair "
                           "and negative cosine similarity; both falling towards 0 means collapse.")
                st.plotly_chart(collapse_chart([e.to_json() for e in snap.epochs]), width="stretch")
        if snap.done:
            final_state(snap)
            if running:  # it ended while we watched: render the whole page once more, then stop polling
                st.rerun()

    panel()


def compare_section(runs: Sequence[RunInfo]) -> None:
    st.dataframe(runs_frame(runs), hide_index=True, width="stretch",
                 column_config={"best val loss": st.column_config.NumberColumn(format="%.4f"),
                                "records/s": st.column_config.NumberColumn(format="%.0f")})
    by_id = {r.run_id: r for r in runs}
    picked = st.multiselect("Compare runs", list(by_id), default=list(by_id)[:2] if len(by_id) >= 2 else [],
                            help="Overlay their curves and see where their configs differ.")
    if len(picked) >= 2:
        st.plotly_chart(compare_runs_chart({rid: read_metrics(by_id[rid].run_dir) for rid in picked}), width="stretch")
        configs = {rid: by_id[rid].config for rid in picked if by_id[rid].config is not None}
        diff = config_diff(configs)
        st.caption("Config differences" if not diff.empty else "Their configs are identical.")
        if not diff.empty:
            st.dataframe(diff, width="stretch")
