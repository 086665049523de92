"""probe page."""

import streamlit as st

st.title("Probe")
st.info("Coming soon.")
