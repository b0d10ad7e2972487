"""Frozen segment features: the backbone registry, the encoders, and the embedding cache."""
