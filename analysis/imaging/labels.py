"""Every FreeSurfer aseg label id and name the compendium uses, in one place.

The ids are identical in FreeSurfer 5.x, 6 and 7; only the *names* of the thalamus labels
changed (``Left-Thalamus-Proper`` up to 6, ``Left-Thalamus`` from 7), which
:func:`label_lookup_table` and :data:`THALAMUS_NAMES` record. Label groups follow
FreeSurfer's own definitions (``mri_segstats --subcortgray``, ``TotalGrayVol``,
``VentricleChoroidVol``) so that measures computed from an aseg match its ``aseg.stats``.

Ids of the simulated head phantom's extra tissues (veins 901–908, skull, scalp, air) are not
FreeSurfer labels; they live with the phantom (:mod:`analysis.simulation.phantom`).
"""

from __future__ import annotations

__all__ = [
    "LEFT_THALAMUS", "RIGHT_THALAMUS", "THALAMUS", "LEFT_LATERAL_VENTRICLE", "RIGHT_LATERAL_VENTRICLE",
    "LATERAL_VENTRICLES", "VENTRICULAR_CSF", "CEREBRAL_WHITE_MATTER", "CORTEX", "CEREBELLUM_CORTEX",
    "SUBCORTICAL_GRAY", "GRAY_MATTER", "VENTRICLES_CHOROID", "CAUDATE", "PUTAMEN", "PALLIDUM",
    "THALAMUS_NAMES", "label_lookup_table", "label_name", "freesurfer_major_version",
]

LEFT_THALAMUS = 10
RIGHT_THALAMUS = 49
#: Thalamus (left, right): the paper's volume of interest.
THALAMUS = (LEFT_THALAMUS, RIGHT_THALAMUS)
LEFT_LATERAL_VENTRICLE = 4
RIGHT_LATERAL_VENTRICLE = 43
#: Lateral ventricles (left, right): where the CSF reference is taken (atria).
LATERAL_VENTRICLES = (LEFT_LATERAL_VENTRICLE, RIGHT_LATERAL_VENTRICLE)
#: All ventricular CSF: lateral, inferior lateral, 3rd and 4th ventricles.
VENTRICULAR_CSF = (4, 43, 5, 44, 14, 15)
#: Cerebral white matter (left, right).
CEREBRAL_WHITE_MATTER = (2, 41)
#: Deep grey nuclei (left, right).
CAUDATE = (11, 50)
PUTAMEN = (12, 51)
PALLIDUM = (13, 52)
#: Cerebral cortex (left, right).
CORTEX = (3, 42)
#: Cerebellar cortex (left, right).
CEREBELLUM_CORTEX = (8, 47)
#: FreeSurfer's ``SubCortGrayVol`` labels (``mri_segstats --subcortgray``): thalamus, caudate,
#: putamen, pallidum, hippocampus, amygdala, accumbens, ventral DC (substantia nigra, 27/59,
#: is not in the phantom).
SUBCORTICAL_GRAY = (10, 11, 12, 13, 17, 18, 26, 28, 49, 50, 51, 52, 53, 54, 58, 60)
#: Grey matter as counted by FreeSurfer's ``TotalGrayVol``.
GRAY_MATTER = CORTEX + SUBCORTICAL_GRAY + CEREBELLUM_CORTEX
#: ``VentricleChoroidVol``: lateral, inferior lateral, 3rd, 4th, 5th ventricles, choroid plexus.
VENTRICLES_CHOROID = (4, 5, 14, 15, 31, 43, 44, 63, 72)

#: Accepted names of the thalamus labels: (FreeSurfer <= 6, FreeSurfer >= 7).
THALAMUS_NAMES = {
    LEFT_THALAMUS: ("Left-Thalamus-Proper", "Left-Thalamus"),
    RIGHT_THALAMUS: ("Right-Thalamus-Proper", "Right-Thalamus"),
}

# Labels of FreeSurferColorLUT.txt that appear in aseg.mgz, FreeSurfer 7 spelling.
_LUT_V7 = {
    0: "Unknown",
    2: "Left-Cerebral-White-Matter", 3: "Left-Cerebral-Cortex",
    4: "Left-Lateral-Ventricle", 5: "Left-Inf-Lat-Vent",
    7: "Left-Cerebellum-White-Matter", 8: "Left-Cerebellum-Cortex",
    9: "Left-Thalamus-unused", 10: "Left-Thalamus",
    11: "Left-Caudate", 12: "Left-Putamen", 13: "Left-Pallidum",
    14: "3rd-Ventricle", 15: "4th-Ventricle", 16: "Brain-Stem",
    17: "Left-Hippocampus", 18: "Left-Amygdala", 24: "CSF",
    26: "Left-Accumbens-area", 28: "Left-VentralDC", 30: "Left-vessel",
    31: "Left-choroid-plexus",
    41: "Right-Cerebral-White-Matter", 42: "Right-Cerebral-Cortex",
    43: "Right-Lateral-Ventricle", 44: "Right-Inf-Lat-Vent",
    46: "Right-Cerebellum-White-Matter", 47: "Right-Cerebellum-Cortex",
    48: "Right-Thalamus-unused", 49: "Right-Thalamus",
    50: "Right-Caudate", 51: "Right-Putamen", 52: "Right-Pallidum",
    53: "Right-Hippocampus", 54: "Right-Amygdala", 58: "Right-Accumbens-area",
    60: "Right-VentralDC", 62: "Right-vessel", 63: "Right-choroid-plexus",
    72: "5th-Ventricle", 77: "WM-hypointensities", 80: "non-WM-hypointensities",
    85: "Optic-Chiasm",
    251: "CC_Posterior", 252: "CC_Mid_Posterior", 253: "CC_Central",
    254: "CC_Mid_Anterior", 255: "CC_Anterior",
}
# FreeSurfer <= 6 differs only in labels 9/10 and 48/49.
_LUT_V6 = {**_LUT_V7, 9: "Left-Thalamus", 10: "Left-Thalamus-Proper",
           48: "Right-Thalamus", 49: "Right-Thalamus-Proper"}


def freesurfer_major_version(version):
    """Major version (int) of ``version``: an int, a string like ``"7.1.1"`` / ``"5.x"``, or an
    object with a ``major`` attribute (:class:`analysis.imaging.freesurfer.FreeSurferVersion`).

    Raises
    ------
    ValueError
        If no major version can be read (the message names the value).
    """
    if hasattr(version, "major"):
        if version.major is None:
            raise ValueError(f"FreeSurfer version {getattr(version, 'version', version)!r} has no known major version")
        return int(version.major)
    try:
        return int(str(version).strip().lstrip("<>=").split(".")[0])
    except ValueError:
        raise ValueError(f"cannot read a FreeSurfer major version from {version!r}") from None


def label_lookup_table(*, version=7):
    """Label id -> structure name for the aseg labels the compendium uses.

    Parameters
    ----------
    version : int, str or FreeSurferVersion, optional
        FreeSurfer major version (5, 6, 7, ...) or a :class:`~analysis.imaging.freesurfer.FreeSurferVersion`.
        Versions <= 6 use ``Left-Thalamus-Proper`` for label 10, version 7 and later ``Left-Thalamus``.

    Returns
    -------
    dict of int -> str
        A copy; editing it does not change the module's table.
    """
    major = freesurfer_major_version(version)
    return dict(_LUT_V6 if major <= 6 else _LUT_V7)


def label_name(label_id, *, version=7):
    """Name of aseg label ``label_id`` in FreeSurfer ``version`` (``ValueError`` if unknown)."""
    lut = label_lookup_table(version=version)
    try:
        return lut[int(label_id)]
    except KeyError:
        raise ValueError(f"aseg label {label_id} is not in the compendium's lookup table") from None
