"""The Streamlit calibration dashboard, a thin layer over :mod:`reranker`.

``reranker dashboard`` serves ``streamlit_app.py`` (the router); ``app_pages/`` holds the pages.
"""
