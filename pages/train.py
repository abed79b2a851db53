"""Train page: not built yet; its issue fills it."""

import streamlit as st

st.title("Train")
st.info("This page is not built yet.")
