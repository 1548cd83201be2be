"""Relative thalamic χ when the segmentation and the χ map differ in resolution.

Nearest-neighbour resampling of a coarser segmentation puts the thalamic boundary up to half a
segmentation voxel off, and a coarser χ map mixes thalamus with white matter, CSF and veins in
its boundary voxels; both pull the mean towards the surroundings. :func:`analysis.imaging.roi.
partial_volume_voi` drops the voxels that the coarser grid makes uncertain. Truth: 40 ppb.
"""

import nibabel as nib
import numpy as np
import pytest

from analysis.imaging.partial_volume import label_fraction
from analysis.imaging.roi import thalamic_susceptibility
from analysis.simulation.phantom import make_head_phantom

TRUTH_PPB = 40.0


def _block_average(phantom, factor=2):
    """χ (NaN outside the brain) averaged over factor³ blocks: a coarser acquisition with partial volume."""
    chi = np.where(phantom.brain_mask, phantom.chi_ppm, 0).astype(np.float64)
    s = tuple(d // factor * factor for d in chi.shape)

    def blk(x):
        x = x[:s[0], :s[1], :s[2]]
        return x.reshape(s[0] // factor, factor, s[1] // factor, factor, s[2] // factor, factor).mean((1, 3, 5))

    inside = blk(phantom.brain_mask.astype(float)) > 0.5
    aff = phantom.affine @ np.diag([factor, factor, factor, 1.0])
    aff[:3, 3] = phantom.affine[:3, :3] @ np.full(3, (factor - 1) / 2) + phantom.affine[:3, 3]
    return nib.Nifti1Image(np.where(inside, blk(chi), np.nan).astype(np.float32), aff)


def _img(phantom, data):
    return nib.Nifti1Image(np.asarray(data), phantom.affine)


@pytest.mark.parametrize("fine_mm", [2.0, pytest.param(1.0, marks=pytest.mark.slow)])
def test_coarser_segmentation_than_chi(fine_mm):
    fine = make_head_phantom(resolution_mm=fine_mm, seed=0)
    coarse = make_head_phantom(resolution_mm=2 * fine_mm, seed=0)
    chi = _img(fine, np.where(fine.brain_mask, fine.chi_ppm, np.nan).astype(np.float32))
    seg = _img(coarse, coarse.aseg.astype(np.int32))
    naive = thalamic_susceptibility(chi, seg, partial_volume=False)["relative_ppb"]
    got = thalamic_susceptibility(chi, seg)
    assert abs(naive - TRUTH_PPB) > 2.5                 # the bias the correction removes
    assert got["relative_ppb"] == pytest.approx(TRUTH_PPB, abs=1.5)
    assert got["left_partial_volume_rule"] == "erode" and got["left_n_partial_volume_dropped"] > 0


@pytest.mark.parametrize("fine_mm", [2.0, pytest.param(1.0, marks=pytest.mark.slow)])
def test_coarser_chi_than_segmentation(fine_mm):
    fine = make_head_phantom(resolution_mm=fine_mm, seed=0)
    chi = _block_average(fine)
    seg = _img(fine, fine.aseg.astype(np.int32))
    naive = thalamic_susceptibility(chi, seg, partial_volume=False)["relative_ppb"]
    got = thalamic_susceptibility(chi, seg)
    assert abs(naive - TRUTH_PPB) > 2.0
    assert got["relative_ppb"] == pytest.approx(TRUTH_PPB, abs=1.5)
    assert got["left_partial_volume_rule"] == "fraction"


def test_same_resolution_is_unchanged():
    ph = make_head_phantom(resolution_mm=4.0, seed=1)
    chi = _img(ph, np.where(ph.brain_mask, ph.chi_ppm, np.nan).astype(np.float32))
    seg = _img(ph, ph.aseg.astype(np.int32))
    a = thalamic_susceptibility(chi, seg)
    b = thalamic_susceptibility(chi, seg, partial_volume=False)
    assert a["relative_ppb"] == b["relative_ppb"] and a["left_partial_volume_rule"] == "none"


def test_label_fraction_of_a_half_covered_voxel():
    seg = nib.Nifti1Image(np.zeros((4, 4, 4), np.int32), np.eye(4))
    seg.dataobj[:2] = 10                                  # x < 1.5 mm is label 10
    chi = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]) @ np.eye(4))
    chi.affine[:3, 3] = 0.5                               # 2 mm voxels covering the 4 fine ones
    frac = label_fraction(seg, nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), chi.affine), 10)
    assert frac[0].min() == 1.0 and frac[1].max() == 0.0
