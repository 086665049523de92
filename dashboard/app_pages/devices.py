"""devices page."""

import streamlit as st

st.title("Devices")
st.info("Coming soon.")
