"""recdash: a dashboard over MLflow for rankfm recommender models.

Kept import-light on purpose: the logged pyfunc model ships this package as code and must load with
numpy and pandas only, so nothing here imports rankfmc, streamlit or plotly at import time.
"""

__version__ = "0.1.0"
