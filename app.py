"""recdash entry point: ``streamlit run app.py``. A router (st.navigation) plus the shared sidebar."""

import streamlit as st

st.set_page_config(page_title="recdash", page_icon=":bar_chart:", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/runs.py", title="Runs", icon=":material/table_rows:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/recommend.py", title="Recommend", icon=":material/recommend:"),
    st.Page("pages/models.py", title="Models", icon=":material/inventory_2:"),
    st.Page("pages/discover.py", title="Discover", icon=":material/travel_explore:"),
]
st.navigation(pages).run()
