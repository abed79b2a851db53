"""Recommend page: not built yet; its issue fills it."""

import streamlit as st

st.title("Recommend")
st.info("This page is not built yet.")
