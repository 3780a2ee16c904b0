"""Home: what the tool does, where the analyst is, and the one-click demo."""
import streamlit as st

from engine.errors import UserError
from ui import state
from ui.loaders import load_demo

st.title("OCSF Embedding Studio")
st.markdown(
    "Load unlabelled OCSF security and observability events, learn an embedding of them with "
    "self-supervised learning (a TabularResNet trained with contrastive views and masked feature "
    "prediction), and see what it learned: whether success and failure separate, and which events look odd."
)

st.subheader("Where you are")
cols = st.columns(5)
for col, (step, done) in zip(cols, state.workflow_steps()):
    col.markdown(f"{':material/check_circle:' if done else ':material/radio_button_unchecked:'} {step}")

st.subheader("Start")
left, right = st.columns(2)
with left:
    st.markdown("**Try it on the bundled demo**: 72,000 synthetic OCSF events from six classes with labelled attacks.")
    if st.button("Load demo dataset", type="primary", icon=":material/dataset:"):
        try:
            with st.spinner("Loading the demo dataset..."):
                data, inferred = load_demo()
        except UserError as exc:
            st.error(f"Could not load the demo dataset: {exc}")
        else:
            state.set_dataset(data, inferred)
            st.switch_page("pages/data.py")
with right:
    st.markdown("**Bring your own events**: JSON, JSONL, CSV or Parquet, optionally gzipped.")
    st.page_link("pages/data.py", label="Go to the Data page", icon=":material/upload_file:")
