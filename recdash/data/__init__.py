"""Data: datasets normalised to one shape (:mod:`~recdash.data.dataset`), their loaders (MovieLens-100K, synthetic,
a user's file), splits, MLflow lineage and side-feature tables. The names below are the package's public face."""

from recdash.data.dataset import Dataset, DatasetError, Split
from recdash.data.files import load_table
from recdash.data.lineage import lineage
from recdash.data.load import apply_min_rating, load_dataset
from recdash.data.movielens import load_movielens_100k, read_movielens_100k, verify_movielens_100k
from recdash.data.split import split_dataset
from recdash.data.synthetic import make_synthetic

__all__ = [
    "Dataset",
    "DatasetError",
    "Split",
    "apply_min_rating",
    "lineage",
    "load_dataset",
    "load_movielens_100k",
    "load_table",
    "make_synthetic",
    "read_movielens_100k",
    "split_dataset",
    "verify_movielens_100k",
]
