"""Dipole kernel and forward model against analytic physics."""

import numpy as np
import pytest
import scipy.fft as sfft

from analysis.imaging.qsm import b0_direction_from_affine, dipole_kernel, fast_shape, forward_field, sphere_kernel
from analysis.imaging.qsm.kernels import pad_array


def test_kernel_zero_at_origin_range_and_symmetry():
    shape = (32, 30, 28)
    d = dipole_kernel(shape, real=False)
    assert d[0, 0, 0] == 0.0
    assert d.min() >= -2.0 / 3.0 - 1e-6 and d.max() <= 1.0 / 3.0 + 1e-6
    # D(k) = D(-k): real and even, so its inverse FFT is real
    neg = d[(-np.arange(shape[0])) % shape[0]][:, (-np.arange(shape[1])) % shape[1]][
        :, :, (-np.arange(shape[2])) % shape[2]]
    np.testing.assert_array_equal(d, neg)
    # kz-axis: 1/3 - 1 = -2/3; kx-axis (perpendicular to B0): +1/3; magic angle: 0
    assert d[0, 0, 3] == pytest.approx(-2.0 / 3.0)
    assert d[3, 0, 0] == pytest.approx(1.0 / 3.0)
    # the rfft half-spectrum is the first Z//2+1 planes of the full one
    np.testing.assert_array_equal(dipole_kernel(shape, real=True), d[:, :, : shape[2] // 2 + 1])


def test_kernel_follows_b0_direction_and_voxel_size():
    d_z = dipole_kernel((16, 16, 16), real=False)
    d_x = dipole_kernel((16, 16, 16), b0_direction=(2.0, 0, 0), real=False)  # normalised internally
    np.testing.assert_allclose(d_x, np.transpose(d_z, (2, 1, 0)), atol=1e-7)
    # anisotropic voxels: same physical frequency -> same value
    d_a = dipole_kernel((16, 16, 32), voxel_size=(1, 1, 0.5), real=False)
    k = (2, 3, 1)  # kz = 1/(32*0.5) cycles/mm equals 1/16
    assert d_a[k] == pytest.approx(d_z[k])


def test_kernel_real_space_is_a_dipole():
    n = 96
    d = sfft.ifftn(dipole_kernel((n, n, n), real=False)).real
    # off the coordinate axes (where the sampled kernel aliases) d(r) = (3cos²θ − 1)/(4π r³)
    for p in [(5, 3, 7), (4, 4, 8), (8, 5, 2), (3, 6, 4)]:
        r = np.linalg.norm(p)
        cos = p[2] / r
        assert d[p] == pytest.approx((3 * cos * cos - 1) / (4 * np.pi * r**3), rel=0.01)


def test_sphere_field_matches_analytic_solution():
    n, a, chi = 64, 8, 0.1
    x, y, z = np.meshgrid(*[np.arange(n) - n // 2] * 3, indexing="ij")
    r = np.sqrt(x * x + y * y + z * z)
    sphere = (r <= a).astype(np.float32) * chi
    f = forward_field(sphere)
    a_eff = (3 * np.count_nonzero(sphere) / (4 * np.pi)) ** (1 / 3)  # the voxelised sphere's volume
    cos = np.divide(z, r, out=np.zeros_like(r), where=r > 0)
    ana = chi * (a_eff / np.maximum(r, 1e-9)) ** 3 * (3 * cos**2 - 1) / 3
    out = (r >= 1.5 * a) & (r <= 3 * a)
    peak = 2 * chi / 3 * (a_eff / (1.5 * a)) ** 3
    assert np.abs(f - ana)[out].max() < 0.04 * peak
    assert np.sqrt(np.mean((f - ana)[out] ** 2)) < 0.01 * peak
    # Lorentz-corrected convention: no field inside a uniformly magnetised sphere
    inside = r < a - 2
    assert abs(f[inside].mean()) < 1e-4 * chi
    assert np.abs(f[inside]).max() < 0.03 * chi
    # linearity and sign: a diamagnetic sphere gives the opposite field
    np.testing.assert_allclose(forward_field(-sphere), -f, atol=1e-7)


def test_sphere_kernel_is_a_normalised_mean():
    shape = (24, 24, 24)
    s = sphere_kernel(shape, radius_mm=3.0)
    assert s[0, 0, 0] == pytest.approx(1.0)
    const = np.full(shape, 2.5, np.float32)
    out = sfft.irfftn(sfft.rfftn(const) * s, s=shape)
    np.testing.assert_allclose(out, 2.5, rtol=1e-5)
    with pytest.raises(ValueError, match="radius_mm"):
        sphere_kernel(shape, radius_mm=0.1)


def test_padding_helpers_and_affine_direction():
    shp = fast_shape((37, 50, 41), pad=3)
    assert all(s >= n + 6 for s, n in zip(shp, (37, 50, 41)))
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    xp, sl = pad_array(x, (6, 7, 8))
    np.testing.assert_array_equal(xp[sl], x)
    assert xp.sum() == x.sum()
    assert np.allclose(np.abs(b0_direction_from_affine(np.diag([-1.0, 1.0, 2.0, 1.0]))), (0, 0, 1))
    # 90° rotation about x: world z is the second voxel axis
    rot = np.eye(4)
    rot[1:3, 1:3] = [[0, -1], [1, 0]]
    assert np.allclose(np.abs(b0_direction_from_affine(rot)), (0, 1, 0))
    with pytest.raises(ValueError, match="b0_direction"):
        dipole_kernel((8, 8, 8), b0_direction=(0, 0, 0))
    with pytest.raises(ValueError, match="voxel_size"):
        dipole_kernel((8, 8, 8), voxel_size=(1, -1, 1))
