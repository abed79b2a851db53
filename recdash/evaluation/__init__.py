"""Evaluation statistics over per-user results: paired comparisons of runs on the same test users."""
