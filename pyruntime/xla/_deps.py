"""Optional dependencies of the XLA path and the trainer, imported only when used.

`import pyruntime` never imports JAX: these helpers import it on the first call of a
function that needs it and turn a missing package into `rt.MissingDependencyError`
naming the extra that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import MissingDependencyError

__all__ = ["EXTRA", "require"]

#: The pip extra that installs everything this subpackage and pyruntime.train need.
EXTRA = "xla"

#: module -> (pip distribution, what needs it)
_WHY = {
    "jax": ("jax", "the XLA lowering, export and training"),
    "optax": ("optax", "training (the Adam-with-weight-decay optimizer)"),
    "tqdm": ("tqdm", "the training progress bar (pass progress=False to go without)"),
}


def require(module: str) -> ModuleType:
    """Import `module` or raise MissingDependencyError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if module.split(".")[0] == "sklearn":   # only the digits example data needs it
            raise MissingDependencyError(
                f"the digits data set needs scikit-learn, which is not installed ({e}); "
                f"install it with `pip install scikit-learn`") from None
        dist, why = _WHY.get(module.split(".")[0], (module, "this function"))
        raise MissingDependencyError(
            f"{why} needs the optional package {dist!r}, which is not installed "
            f"({e}); install it with `pip install pyruntime[{EXTRA}]` "
            f"(or `pip install {dist}`)") from None
