"""Home: which tracking store is in use and how to change it."""

import mlflow
import streamlit as st

st.title("recdash")
st.caption("Train, compare and try rankfm recommender models tracked in MLflow.")
st.subheader("Tracking store")
st.code(mlflow.get_tracking_uri(), language=None)
st.write("Set `MLFLOW_TRACKING_URI` before `make run` to use another store.")
