"""OCSF Embedding Studio engine: ingest, schema, features, augmentation, training, evaluation.

Importable and testable alone; never imports streamlit or plotly.
"""
__version__ = "0.1.0"
