"""Discover's catalog: every entity of a store with its usage (:mod:`~recdash.catalog.entities`) and one search
index over them (:mod:`~recdash.catalog.index`)."""

from recdash.catalog.entities import NOTE_TAG, Catalog, NotFound, build, link, with_links
from recdash.catalog.index import KIND_PARAMS, KIND_TITLES, KINDS, SearchIndex, query_words, word_scores, words

__all__ = [
    "KINDS",
    "KIND_PARAMS",
    "KIND_TITLES",
    "NOTE_TAG",
    "Catalog",
    "NotFound",
    "SearchIndex",
    "build",
    "link",
    "query_words",
    "with_links",
    "word_scores",
    "words",
]
