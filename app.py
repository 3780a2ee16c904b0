"""OCSF Embedding Studio: entry point (``streamlit run app.py``)."""
import streamlit as st

from ui.sidebar import render_sidebar

st.set_page_config(page_title="OCSF Embedding Studio", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/table_view:"),
    st.Page("pages/augmentation.py", title="Augmentation", icon=":material/shuffle:"),
    st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
]

page = st.navigation(PAGES)
render_sidebar()
page.run()
