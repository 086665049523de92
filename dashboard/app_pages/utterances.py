"""utterances page."""

import streamlit as st

st.title("Utterances")
st.info("Coming soon.")
