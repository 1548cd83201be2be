"""Morphology on label grids shared by the phantom's modules (nearest-label fill, closing in mm)."""

from __future__ import annotations

from scipy import ndimage

__all__ = ["closing_mm", "fill_nearest"]


def fill_nearest(labels, fill, valid):
    """Give each voxel of ``fill`` the label of the nearest voxel of ``valid`` (in place)."""
    if not fill.any():
        return labels
    _, idx = ndimage.distance_transform_edt(~valid, return_indices=True)
    labels[fill] = labels[tuple(i[fill] for i in idx)]
    return labels


def closing_mm(mask, radius_mm, sampling):
    """Morphological closing of ``mask`` by a ball of ``radius_mm`` (via two distance transforms)."""
    dil = ndimage.distance_transform_edt(~mask, sampling=sampling) <= radius_mm
    return ndimage.distance_transform_edt(dil, sampling=sampling) > radius_mm
