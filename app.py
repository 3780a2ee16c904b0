"""OCSF Embedding Studio: entry point (``streamlit run app.py``)."""
import streamlit as st

from ui.background import start_numba_warm_up
from ui.sidebar import render_sidebar

st.set_page_config(page_title="OCSF Embedding Studio", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/table_view:"),
    st.Page("pages/augmentation.py", title="Augmentation", icon=":material/shuffle:"),
    st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
    st.Page("pages/explorer.py", title="Explorer", icon=":material/scatter_plot:"),
]

start_numba_warm_up()  # once per server process: the first UMAP map then skips ~30 s of JIT compile
page = st.navigation(PAGES)
render_sidebar()
page.run()
