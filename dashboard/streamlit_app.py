"""The dashboard's entry point: page config, session defaults, the shared sidebar, the router.

Run with ``make run`` or ``reranker dashboard [--port N] [--data DIR]``.

Streamlit runs this file as ``__main__``. Training starts worker processes, and Python's
multiprocessing re-imports the main script in each worker (as ``__mp_main__``): the guard at
the bottom keeps the workers from building a dashboard of their own (each would otherwise log
dozens of "missing ScriptRunContext" warnings and import Streamlit for nothing).
"""

from __future__ import annotations

from pathlib import Path

ICON = Path(__file__).resolve().parent / "assets" / "icon.svg"


def main() -> None:
    """Configure the page, render the shared sidebar and run the selected page."""
    import streamlit as st

    from dashboard import ui

    st.set_page_config(
        page_title="reranker: calibration dashboard",
        page_icon=ICON,  # inlined into the page by this server: no request leaves it
        layout="wide",
        initial_sidebar_state="expanded",
    )
    pages = [
        st.Page(
            "app_pages/data.py",
            title="Data",
            icon=":material/table:",
            url_path="data",
            default=True,
        ),
        st.Page(
            "app_pages/weights.py", title="Weights", icon=":material/tune:", url_path="weights"
        ),
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
        st.Page(
            "app_pages/compare.py",
            title="Compare",
            icon=":material/compare_arrows:",
            url_path="compare",
        ),
        st.Page("app_pages/probe.py", title="Probe", icon=":material/science:", url_path="probe"),
        st.Page(
            "app_pages/devices.py", title="Devices", icon=":material/devices:", url_path="devices"
        ),
    ]
    page = st.navigation(pages)
    st.session_state["_context"] = ui.sidebar()
    page.run()


if __name__ == "__main__":
    main()
