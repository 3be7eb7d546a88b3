"""Shared test fixtures: the ISAs this machine can run, seeded RNGs."""

from __future__ import annotations

import numpy as np
import pytest

from pyruntime import _core

ALL_ISAS = ("scalar", "avx2", "avx512")
#: Every ISA this CPU/OS supports; kernel tests run each of them.
SUPPORTED_ISAS = tuple(i for i in ALL_ISAS if _core.isa_supported(i))


def isa_params():
    """pytest params over all ISAs; unsupported ones are skipped with a reason."""
    return [pytest.param(i, marks=pytest.mark.skipif(i not in SUPPORTED_ISAS,
                                                     reason=f"CPU lacks {i}"))
            for i in ALL_ISAS]


@pytest.fixture(params=isa_params())
def isa(request) -> str:
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
