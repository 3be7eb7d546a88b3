"""The boundary transpose kernel (NCHW <-> NHWC) against numpy's .T at every ISA, with
ragged tile edges and a padded output stride that must stay untouched."""

from __future__ import annotations

import numpy as np
import pytest

from pyruntime import _core

SIZES = [(1, 1), (1, 9), (9, 1), (7, 7), (8, 8), (8, 16), (13, 17), (16, 8), (31, 33),
         (3, 50176), (96, 12544), (1000, 3)]


@pytest.mark.parametrize("rows,cols", SIZES)
@pytest.mark.parametrize("pad", [0, 3])
def test_transpose_matches_numpy(isa, rows, cols, pad, rng):
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    y = _core.testing.transpose(x, isa, pad)
    assert y.shape == (cols, rows + pad)
    np.testing.assert_array_equal(y[:, :rows], x.T)  # a permutation: exact
    assert np.all(y[:, rows:] == -12345.0), "wrote outside the output rows"


def test_transpose_keeps_special_values(isa):
    x = np.array([[np.nan, -0.0, np.inf], [-np.inf, 1e-45, 3.0]], np.float32)
    y = _core.testing.transpose(x, isa)
    np.testing.assert_array_equal(y, x.T)
    assert np.signbit(y[1, 0])


def test_transpose_rejects_non_2d():
    import pyruntime as rt

    with pytest.raises(rt.ShapeError, match="2-D"):
        _core.testing.transpose(np.zeros(5, np.float32), "scalar")
