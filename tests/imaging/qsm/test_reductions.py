"""Reductions that do not depend on the BLAS kernel or thread count, and solvers that use them:
the same bits with any number of threads."""

import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from analysis.imaging.qsm import medi, pdf
from analysis.imaging.qsm.admm import medi_admm
from analysis.imaging.qsm.reductions import CHUNK, inner, norm, sum_squares
from tests.helpers.qsm import noisy_ellipsoid

VS = (2.0, 2.0, 2.0)


@pytest.mark.parametrize("n", [7, CHUNK, 3 * CHUNK + 11])
def test_inner_matches_an_exactly_rounded_sum(n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    exact = math.fsum((a * b).astype(np.float64).tolist())    # the float32 products, summed exactly
    assert inner(a, b) == pytest.approx(exact, rel=1e-12, abs=1e-12 * n)
    assert sum_squares(a) == pytest.approx(math.fsum((a * a).astype(np.float64).tolist()), rel=1e-12)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)                 # float64: exact products of these
    assert inner(a64, b64) == pytest.approx(math.fsum((a64 * b64).tolist()), rel=1e-12, abs=1e-12 * n)
    assert norm(a) == pytest.approx(float(np.linalg.norm(a.astype(np.float64))), rel=1e-7)
    assert inner(a.reshape(1, -1), b) == inner(a, b)                     # any shape, C order


def test_inner_rejects_mismatched_or_complex_arrays():
    with pytest.raises(ValueError, match="elements"):
        inner(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="real"):
        inner(np.ones(3, complex), np.ones(3))


@pytest.fixture(scope="module")
def head():
    """A 96 x 100 x 92 ellipsoid brain at 2 mm: its FFT grid is cut into several chunks of planes."""
    return noisy_ellipsoid((96, 100, 92), voxel_size=VS, noise_ppm=0.003, seed=4)


def test_admm_gives_the_same_bits_with_any_number_of_threads(head):
    args = (head["field"], head["mask"], head["magnitude"])
    a = medi_admm(*args, voxel_size=VS, max_iter=6, workers=1)
    for workers in (2, 3):
        b = medi_admm(*args, voxel_size=VS, max_iter=6, workers=workers)
        assert np.array_equal(a, b), f"workers={workers} changed the χ map"


def test_cg_solvers_give_the_same_bits_with_any_blas_thread_count(head):
    """PDF's and Gauss-Newton MEDI's conjugate gradients stop on sums of squares: with BLAS dot products
    they depended on OPENBLAS_NUM_THREADS."""
    field = head["field"]
    out = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            local = pdf(field, head["mask"], voxel_size=VS, max_iter=30, workers=threads)
            chi = medi(local, head["mask"], head["magnitude"], voxel_size=VS, solver="gncg", max_iter=2,
                       smv_radius_mm=None, merit=False, workers=threads)
        out.append((local, chi))
    assert np.array_equal(out[0][0], out[1][0]), "PDF"
    assert np.array_equal(out[0][1], out[1][1]), "MEDI (Gauss-Newton)"
