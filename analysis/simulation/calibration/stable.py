"""Decisions that do not depend on the last bits of floating-point arithmetic.

The calibration is a chain of searches (value swaps, single moves, greedy nudges, multi-start
optimisation). Each step compares two criteria computed through BLAS and LAPACK, whose last bits
depend on the BLAS kernel (e.g. OpenBLAS' Haswell vs SkylakeX kernels), the thread count and the
summation order. A search that branches on such a difference takes another path on another machine
and, being a search, never comes back to the same result. Measured on the default seed: the
covariate refinement meets ~70 mathematically null moves (e.g. swapping the ages of two patients
whose other covariates are equal), whose criterion differs from the current one by ±1e-14
relative, and a strict ``new < cur`` took or refused each of them by rounding alone.

Three rules make every decision the same wherever it runs:

* :func:`improves`: a move is taken only when it lowers the criterion by more than a relative
  tolerance (:data:`RTOL`, 1e-9: four orders above the noise of these criteria, many below any
  real improvement). A tie is refused, whatever its rounding.
* :func:`snap`: a continuous optimum that feeds a later search (Table 2's target covariance,
  the adjusted coefficients, the covariate effects) is rounded to :data:`SNAP_DIGITS` significant
  digits, far coarser than the optimiser's own spread across machines (~1e-9 relative, measured)
  and far finer than anything that prints.
* :func:`single_threaded`: the calibration runs its BLAS on one thread (threadpoolctl), so the
  thread count does not enter at all (and its tiny matrices run faster without thread start-up).

These are hand-written because no library offers them: they are the usual guards of a
reproducible search (a comparison with a tolerance, rounding at the boundary between stages).
"""

from __future__ import annotations

import contextlib

import numpy as np
from threadpoolctl import threadpool_limits

__all__ = ["RTOL", "SNAP_DIGITS", "improves", "snap", "single_threaded"]

#: Relative improvement below which two criteria are a tie (see :func:`improves`).
RTOL = 1e-9

#: Significant digits kept by :func:`snap`.
SNAP_DIGITS = 6


def improves(new, current, *, rtol=RTOL):
    """True when ``new`` is lower than ``current`` by more than ``rtol`` of its magnitude.

    Parameters
    ----------
    new, current : float
        Criteria to be minimised.
    rtol : float, optional
        Relative tolerance (default :data:`RTOL`); differences within it are ties and refused.

    Returns
    -------
    bool
    """
    return bool(new < current - rtol * max(abs(current), abs(new), np.finfo(float).tiny))


def snap(x, *, digits=SNAP_DIGITS):
    """Round ``x`` (scalar or array) to ``digits`` significant digits, element by element.

    Correctly rounded (through Python's decimal formatting), so that the same value snaps the same
    way everywhere; zeros and non-finite values are returned unchanged. A scalar gives a float.
    """
    a = np.asarray(x, dtype=float)
    out = np.array([float(f"{v:.{digits}g}") for v in a.ravel()]).reshape(a.shape)
    return float(out) if out.ndim == 0 else out


@contextlib.contextmanager
def single_threaded():
    """Limit BLAS (and OpenMP) to one thread inside the block."""
    with threadpool_limits(limits=1):
        yield
