"""The dashboard's pages: scripts that ``streamlit_app.py`` routes to (never imported)."""
