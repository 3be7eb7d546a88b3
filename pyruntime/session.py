"""Compile and run (skeleton; see issue 2 section 4)."""
class Session:  # noqa: D101
    pass
def compile(graph, device="cpu", threads=None):  # noqa: D103
    raise NotImplementedError
