"""Keras-like builder (skeleton)."""
