"""Inner products and norms whose value does not depend on the BLAS kernel or the thread count.

``np.dot``, ``np.vdot`` and ``np.linalg.norm`` of a large array go through BLAS (``sdot``, ``ddot``),
whose partial sums depend on the kernel's SIMD width (OpenBLAS' Haswell and SkylakeX kernels differ)
and are split across its threads. An iterative solver that compares such a sum with its tolerance
then stops at another iteration, or takes another step, on another machine or with another
``OPENBLAS_NUM_THREADS``; float32 ``sdot`` also sums in float32.

Here the products are formed element by element in the arrays' precision (IEEE multiplication
rounds the same everywhere) in fixed chunks of :data:`CHUNK` elements, each chunk is summed in
float64 by numpy's pairwise summation, and the chunk sums are added in order: the same bits on every machine and thread
count, more accurate than a float32 BLAS sum, and with a cache-sized scratch buffer instead of a
temporary of the array's size. Hand-written because neither numpy nor scipy promises a reduction
order; ``math.fsum`` would, but needs a Python float per element.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CHUNK", "inner", "sum_squares", "norm"]

#: Elements per chunk (fixed: the summation order must not depend on the machine).
CHUNK = 1 << 16


def inner(a, b):
    """Real inner product ``Σ a·b`` summed in float64, the same on every BLAS kernel and thread count.

    The products are rounded to the arrays' precision (float32 for float32 arrays, as BLAS'
    ``sdot`` does), the sum is float64.

    Parameters
    ----------
    a, b : ndarray
        Real arrays of the same size (any shape; compared in C order).

    Returns
    -------
    float
    """
    a, b = np.ravel(a), np.ravel(b)
    if a.size != b.size:
        raise ValueError(f"inner: a has {a.size} elements, b has {b.size}")
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        raise TypeError("inner: real arrays only")
    dtype = np.result_type(a.dtype, b.dtype, np.float32)  # float32 products for float32 arrays
    buf = np.empty(min(CHUNK, a.size), dtype)
    parts = np.empty(-(-a.size // CHUNK), np.float64)
    for j, i0 in enumerate(range(0, a.size, CHUNK)):
        n = min(CHUNK, a.size - i0)
        t = np.multiply(a[i0:i0 + n], b[i0:i0 + n], out=buf[:n])
        parts[j] = np.add.reduce(t, dtype=np.float64)
    return float(np.add.reduce(parts))


def sum_squares(a):
    """``Σ a²`` in float64 (:func:`inner` of ``a`` with itself)."""
    return inner(a, a)


def norm(a):
    """Euclidean norm ``sqrt(Σ a²)`` (:func:`sum_squares`), as ``np.linalg.norm`` of the flattened array."""
    return float(np.sqrt(sum_squares(a)))
