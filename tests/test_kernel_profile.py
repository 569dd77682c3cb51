"""The bookkeeping of benchmarks/kernel_profile.py: the blocks it times and the work it counts are the kernel's.

What can be wrong: the block rebuilt from ``_lu_factor``'s in-place factors and row interchanges differing from the
block that was factored (a wrong interchange order times a different matrix); the multiply-add count of the LU
disagreeing with the closed form on a dense matrix, or counting the zero multipliers that ``_lu_factor`` skips.
"""
from __future__ import annotations

import numpy as np
import pytest
from nanosep.transport import compiled

pytestmark = pytest.mark.skipif(not compiled.HAVE_NUMBA, reason="the compiled kernel needs numba")


def _factored(A):
    from nanosep.transport.compiled_system import _lu_factor
    lu, piv = A.copy(), np.empty(A.shape[0], np.int64)
    assert _lu_factor(lu, piv)
    return lu, piv


def test_unpack_rebuilds_the_factored_block_with_its_row_interchanges():
    from benchmarks.kernel_profile import _unpack
    rng = np.random.default_rng(3)
    A = rng.standard_normal((17, 17))          # no diagonal dominance: partial pivoting moves rows
    lu, piv = _factored(A)
    assert np.any(piv != np.arange(17))
    np.testing.assert_allclose(_unpack(lu, piv), A, rtol=0, atol=1e-12)


def test_lu_update_count_is_the_dense_closed_form_and_skips_zero_multipliers():
    from benchmarks.kernel_profile import _lu_updates
    m = 12
    A = np.random.default_rng(4).standard_normal((m, m))
    ops, fac = _lu_updates(A)
    assert ops == (m - 1) * m * (2 * m - 1) // 6          # sum over k of (m - k - 1)^2
    lu, _ = _factored(A)
    np.testing.assert_allclose(fac, lu, rtol=0, atol=1e-12)   # the same factors as the kernel's LU
    # two uncoupled diagonal blocks: eliminating the first block's columns leaves the second block's rows alone
    B = np.zeros((2 * m, 2 * m))
    B[:m, :m] = A
    B[m:, m:] = A + 10 * np.eye(m)
    ops_b, _ = _lu_updates(B)
    dense_b = (2 * m - 1) * 2 * m * (4 * m - 1) // 6
    first = sum((m - k - 1) * (2 * m - k - 1) for k in range(m))   # rows of block 1, full remaining width
    second = (m - 1) * m * (2 * m - 1) // 6
    assert ops_b == first + second < dense_b
