"""Evaluation: vectorised ranking metrics (:mod:`~recdash.evaluation.metrics`), held-out sets mapped onto a
model (:mod:`~recdash.evaluation.heldout`), and whether a difference between runs is real."""
