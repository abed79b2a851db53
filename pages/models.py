"""Models page: not built yet; its issue fills it."""

import streamlit as st

st.title("Models")
st.info("This page is not built yet.")
