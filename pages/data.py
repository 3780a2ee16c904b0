"""Data: load events, see what was read and rejected, and type every column."""
import streamlit as st

from engine.errors import UserError
from ui import state
from ui.data_view import ingest_report, preview, schema_editor, schema_file_controls
from ui.loaders import load_demo, load_path, load_upload

st.title("Data")

upload_tab, path_tab, demo_tab = st.tabs(["Upload a file", "Path on this machine", "Demo dataset"])
loaded = None
try:
    with upload_tab:
        upload = st.file_uploader(
            "JSON array, JSONL/NDJSON, CSV or Parquet, optionally .gz",
            type=["json", "jsonl", "ndjson", "csv", "parquet", "gz"],
        )
        if upload is not None and st.session_state.get("loaded_upload") != upload.file_id:
            with st.spinner(f"Reading {upload.name}..."):
                loaded = load_upload(upload, upload.name)
            st.session_state["loaded_upload"] = upload.file_id
    with path_tab:
        with st.form("path_form", border=False):
            path = st.text_input("File path", placeholder="/data/events.jsonl.gz")
            if st.form_submit_button("Load file") and path.strip():
                with st.spinner(f"Reading {path}..."):
                    loaded = load_path(path.strip())
    with demo_tab:
        st.markdown("72,000 synthetic OCSF events (six classes, seven labelled attack scenarios).")
        if st.button("Load demo dataset", key="data_demo"):
            with st.spinner("Loading the demo dataset..."):
                loaded = load_demo()
except UserError as exc:
    st.error(str(exc), icon=":material/error:")

if loaded is not None:
    state.set_dataset(*loaded)

data, schema = state.dataset(), state.schema()
if data is None or schema is None:
    st.info("Load events to see the ingest report, a preview and the inferred schema.")
    st.stop()

st.header("Ingest report")
ingest_report(data.report)

st.header("Preview")
preview(data.frame)

st.header("Schema")
st.caption(
    "Every column gets a type, an OCSF role and the reason for both. Change a type or role in the table; "
    "label and ignored columns never feed the model."
)
exclude = st.toggle(
    "Keep the outcome family out of the model inputs",
    value=schema.exclude_outcome,
    help="status_id, status, status_code, http_response.code, severity... still colour the plots and feed evaluation. "
    "When outcome columns are inputs, success and failure separate by construction.",
)
edited = schema_editor(schema.with_exclude_outcome(exclude))
if edited != schema:
    state.set_schema(edited)
    schema = edited
n_inputs = len(schema.numeric) + len(schema.categorical) + len(schema.timestamp)
st.caption(
    f"Model inputs: {len(schema.numeric)} numeric, {len(schema.categorical)} categorical, "
    f"{len(schema.timestamp)} timestamp ({n_inputs} in all) · labels: {', '.join(schema.labels) or 'none'}"
)
schema_file_controls(schema, list(data.frame.columns))
