"""calibration page."""

import streamlit as st

st.title("Calibration")
st.info("Coming soon.")
