"""ONNX import (skeleton; see issue 2 section 5)."""
def load_onnx(model):  # noqa: D103
    raise NotImplementedError
