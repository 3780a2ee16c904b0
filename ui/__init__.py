"""Streamlit-only helpers: session-state keys, cached loaders, shared widgets, figure builders."""
