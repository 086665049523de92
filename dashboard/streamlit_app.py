"""The dashboard's entry point: page config, session defaults, the shared sidebar, the router.

Run with ``make run`` or ``reranker dashboard [--port N] [--data DIR]``.
"""

from __future__ import annotations

import streamlit as st

from dashboard import ui

st.set_page_config(
    page_title="reranker: calibration dashboard",
    page_icon=":material/insights:",
    layout="wide",
    initial_sidebar_state="expanded",
)

PAGES = [
    st.Page(
        "app_pages/data.py", title="Data", icon=":material/table:", url_path="data", default=True
    ),
    st.Page("app_pages/weights.py", title="Weights", icon=":material/tune:", url_path="weights"),
    st.Page(
        "app_pages/calibration.py",
        title="Calibration",
        icon=":material/show_chart:",
        url_path="calibration",
    ),
    st.Page(
        "app_pages/utterances.py",
        title="Utterances",
        icon=":material/manage_search:",
        url_path="utterances",
    ),
    st.Page("app_pages/probe.py", title="Probe", icon=":material/science:", url_path="probe"),
    st.Page("app_pages/devices.py", title="Devices", icon=":material/devices:", url_path="devices"),
]

page = st.navigation(PAGES)
st.session_state["_context"] = ui.sidebar()
page.run()
