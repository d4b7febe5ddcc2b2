"""Evaluation: feature extractors, scores in feature space, per-image scores and references."""
