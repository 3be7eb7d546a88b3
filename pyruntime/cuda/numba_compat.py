"""The one place pyruntime imports numba.cuda.

- numba-cuda 0.30 still calls ``np.row_stack``, which numpy 2.5 removed: the alias is set
  to ``np.vstack`` here, only when the attribute is missing, before numba.cuda is imported.
- ``NUMBA_ENABLE_CUDASIM=1`` (the CUDA simulator, used by CI) is read into numba's config
  when ``import numba`` first runs. If numba was imported before the variable was set
  (but numba.cuda was not), the config is re-read here, so setting the variable before
  importing this module is enough. Once numba.cuda is imported its mode is fixed for the
  process: ``simulator()`` says which one this process got.
"""

from __future__ import annotations

import sys

import numpy as np

from ..errors import MissingDependencyError

if not hasattr(np, "row_stack"):  # numpy >= 2.5; numba-cuda 0.30 still uses it
    np.row_stack = np.vstack

try:
    import numba
    if "numba.cuda" not in sys.modules:
        import numba.core.config as _numba_config
        _numba_config.reload_config()  # pick up NUMBA_ENABLE_CUDASIM set after `import numba`
    from numba import cuda
except ImportError as e:  # numba or numba-cuda (or its cuda-bindings) missing
    raise MissingDependencyError(
        "the CUDA kernels need numba and numba-cuda (pip install 'pyruntime[cuda]', or "
        f"'pyruntime[cuda13]' for CUDA 13): {e}") from e

__all__ = ["cuda", "numba", "simulator"]


def simulator() -> bool:
    """True when numba.cuda in this process is the CUDA simulator (NUMBA_ENABLE_CUDASIM=1)."""
    # numba.cuda's __init__ imports simulator_init or device_init, by the mode it read
    return "numba.cuda.simulator_init" in sys.modules
