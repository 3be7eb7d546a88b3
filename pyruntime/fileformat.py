"""Model files (skeleton; see issue 2 section 6)."""
def save(graph, path):  # noqa: D103
    raise NotImplementedError
def load(path):  # noqa: D103
    raise NotImplementedError
