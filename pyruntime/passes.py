"""Graph passes (skeleton)."""
