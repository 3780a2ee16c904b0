"""Augmentation: which fields are safe to augment, and what two augmented views of an event look like."""
import streamlit as st

from engine.augment import AugmentationPolicy, protected_changes
from engine.config import AugmentConfig
from engine.errors import UserError
from ui import state
from ui.augment_view import (apply_changes, event_table, fitted_encoder, highlight, pick_rows, policy_changes,
                             policy_table, unsafe_changes)
from ui.figures import change_rate_chart

DIAGNOSTIC_ROWS = 2_000

st.title("Augmentation")
data, schema = state.dataset(), state.schema()
if data is None or schema is None:
    st.info("Load events on the Data page first.")
    st.page_link("pages/data.py", label="Go to the Data page", icon=":material/table_view:")
    st.stop()
st.session_state["augment_reviewed"] = True

st.caption("Contrastive learning teaches the model that two augmented views of one event are the same event. "
           "An augmentation that changes what happened or how it ended teaches it that different events are alike.")

with st.container(border=True):
    st.subheader("Strength")
    a, b, c, d = st.columns(4)
    cfg = AugmentConfig(
        noise_level=a.slider("Numeric noise level", 0.0, 0.30, schema.augment.noise_level, 0.01,
                             help="x * (1 + e), e ~ N(0, level). Sensible range 0.05-0.15."),
        swap_prob=b.slider("Categorical swap probability", 0.0, 0.50, schema.augment.swap_prob, 0.01,
                           help="Share of cells replaced by a value drawn from the column's own distribution. "
                                "Sensible range 0.1-0.2."),
        mask_prob=c.slider("Mask probability", 0.0, 0.50, schema.augment.mask_prob, 0.01,
                           help="Share of cells in mask fields set to UNKNOWN."),
        time_jitter_s=d.slider("Time jitter (s)", 0.0, 60.0, float(schema.augment.time_jitter_s), 1.0,
                               help="Standard deviation of the timestamp shift, in seconds."),
    )
    if cfg != schema.augment:
        schema = schema.with_augment(cfg)
        state.set_schema(schema)

encoder = fitted_encoder(data, schema)
policy = AugmentationPolicy.from_schema(schema, encoder)

st.subheader("Field policies")
edited = st.data_editor(
    policy_table(policy), key="policy_editor", hide_index=True, width="stretch", disabled=["field", "type", "badge", "reason"],
    column_config={"policy": st.column_config.SelectboxColumn("Policy", options=["protected", "jitter", "swap", "mask", "time_jitter", "none"], required=True),
                   "badge": st.column_config.TextColumn("Safe?"), "reason": st.column_config.TextColumn("Why", width="large")},
)
try:
    changes = policy_changes(policy, edited)
except UserError as exc:
    st.error(str(exc))
    changes = {}
unsafe = unsafe_changes(policy, changes)
if unsafe:
    st.warning(f"Making a protected field augmentable lets views contradict the event: {', '.join(unsafe)}. "
               "Training may then learn that different events are alike.", icon=":material/warning:")
    if not st.checkbox(f"I understand: augment {', '.join(unsafe)} anyway", key=f"confirm_{'_'.join(unsafe)}"):
        changes = {k: v for k, v in changes.items() if k not in unsafe}
if changes:
    schema = apply_changes(schema, changes)
    state.set_schema(schema)
    policy = AugmentationPolicy.from_schema(schema, encoder)
overridden = [f.name for f in policy.fields if f.overridden]
if overridden:
    st.error(f"Protection overridden for {', '.join(overridden)}: augmented views may contradict the original event.",
             icon=":material/gpp_maybe:")

st.subheader("Original and two augmented views")
mode_label = st.radio("Events", ["Random", "By row number", "By filter"], horizontal=True)
mode = {"Random": "random", "By row number": "rows", "By filter": "filter"}[mode_label]
left, right = st.columns([1, 3])
seed = int(left.number_input("Seed", min_value=0, value=0, step=1))
rows_text, column, value = "", None, None
if mode == "rows":
    rows_text = right.text_input("Row numbers", "0, 1, 2")
elif mode == "filter":
    column = right.selectbox("Column", list(data.frame.columns), index=list(data.frame.columns).index("status_id") if "status_id" in data.frame else 0)
    value = right.selectbox("Value", data.frame[column].astype("string").fillna("<NA>").value_counts().head(50).index.tolist())
try:
    rows = pick_rows(data.frame, mode, seed=seed, n=5, rows_text=rows_text, column=column, value=value)
except UserError as exc:
    st.error(str(exc))
    st.stop()
preview = policy.preview(rows, seed=seed)
fields = [f.name for f in policy.fields]
only_changed = st.toggle("Show only the fields that changed", value=False)
for position, tab in enumerate(st.tabs([f"Row {i}" for i in rows.index])):
    with tab:
        table, changed = event_table(preview, position, fields, only_changed)
        st.dataframe(highlight(table, changed), width="stretch", height=min(38 + 35 * len(table), 500))
st.caption("Highlighted cells differ from the original. Values are shown raw: bytes as bytes, categories as their strings.")

st.subheader(f"What augmentation changes, over {min(DIAGNOSTIC_ROWS, data.rows):,} events")
sample = data.frame.sample(n=min(DIAGNOSTIC_ROWS, data.rows), random_state=seed)
diagnostics = policy.diagnostics(encoder.transform(sample), seed=seed)
n_protected = protected_changes(diagnostics)
st.metric("Changed cells in protected fields", n_protected, help="Must be 0 unless you overrode a protection.")
st.plotly_chart(change_rate_chart(diagnostics), width="stretch")

st.subheader("Use these settings")
st.caption("The policies and strengths live in the schema: training uses exactly what is previewed here.")
st.download_button("Save schema with augmentation settings", schema.dumps(), file_name="schema.json",
                   mime="application/json", icon=":material/download:")
