"""Widgets of the Data page: the ingest report, the preview and the schema editor."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from engine.errors import UserError
from engine.ingest import IngestReport
from engine.schema import Schema
from ui import state
from ui.schema_table import ROLE_OPTIONS, TYPE_OPTIONS, apply_edits, schema_frame

PREVIEW_ROWS = 200
PROBLEMS_SHOWN = 200


def ingest_report(report: IngestReport) -> None:
    a, b, c, d = st.columns(4)
    a.metric("Rows read", f"{report.rows_read:,}")
    b.metric("Rows kept", f"{report.rows_kept:,}")
    c.metric("Rows rejected", f"{report.rows_rejected:,}")
    d.metric("Read in", f"{report.seconds:.1f} s")
    st.caption(f"Format: {report.format}{' (gzip)' if report.compressed else ''} · source: {report.source}")
    if report.problems:
        with st.expander(f"Rejected rows and why ({report.rows_rejected:,})", expanded=report.rows_kept == 0):
            problems = pd.DataFrame([{"line": p.line, "reason": p.reason} for p in report.problems[:PROBLEMS_SHOWN]])
            st.dataframe(problems, hide_index=True, width="stretch")
    if report.coercions or report.renamed:
        with st.expander("Columns normalised or coerced"):
            for line in (*report.renamed, *report.coercions):
                st.markdown(f"- {line}")


def preview(frame: pd.DataFrame) -> None:
    st.dataframe(frame.head(PREVIEW_ROWS), width="stretch", height=320)
    st.caption(f"First {min(PREVIEW_ROWS, len(frame)):,} of {len(frame):,} events · {len(frame.columns)} columns")


def schema_editor(schema: Schema) -> Schema:
    """The editable schema table; returns the schema with the analyst's edits applied."""
    table = schema_frame(schema)
    edited = st.data_editor(
        table,
        key="schema_editor",
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(table), 560),
        disabled=["column", "input", "reason", "missing", "cardinality", "examples"],
        column_config={
            "column": st.column_config.TextColumn("Column", pinned=True),
            "type": st.column_config.SelectboxColumn("Type", options=TYPE_OPTIONS, required=True),
            "role": st.column_config.SelectboxColumn("OCSF role", options=ROLE_OPTIONS, required=True),
            "input": st.column_config.CheckboxColumn("Model input", help="Label and ignored columns never feed the model"),
            "reason": st.column_config.TextColumn("Why", width="large"),
            "missing": st.column_config.ProgressColumn("Missing", min_value=0.0, max_value=1.0, format="percent"),
            "cardinality": st.column_config.NumberColumn("Distinct"),
            "examples": st.column_config.TextColumn("Examples"),
        },
    )
    try:
        return apply_edits(schema, edited)
    except UserError as exc:
        st.error(str(exc))
        return schema


def schema_file_controls(schema: Schema, columns: list[str]) -> None:
    left, right = st.columns(2)
    left.download_button("Save schema JSON", schema.dumps(), file_name="schema.json", mime="application/json",
                         icon=":material/download:")
    uploaded = right.file_uploader("Load schema JSON", type=["json"], key="schema_upload")
    if uploaded is not None and st.session_state.get("schema_upload_done") != uploaded.file_id:
        try:
            loaded = Schema.loads(uploaded.getvalue().decode("utf-8", errors="replace"))
        except UserError as exc:
            right.error(f"{uploaded.name}: {exc}")
            return
        missing = [n for n in loaded.names if n not in columns]
        state.set_schema(loaded.restricted_to(columns))
        st.session_state["schema_upload_done"] = uploaded.file_id
        note = f" ({len(missing)} of its columns are not in this data and were dropped)" if missing else ""
        right.success(f"Loaded {uploaded.name}{note}")
        st.rerun()
