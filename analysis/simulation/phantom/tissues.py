"""Label ids of the head phantom and their tissue properties (χ, R2*, proton density, T1).

FreeSurfer ``aseg`` ids wherever FreeSurfer has one, plus the compendium's own ids for the deep
veins (901-905; the realistic phantom adds the thalamostriate veins 906/907 and medullary veins
908), skull (911), scalp (912) and air cavities (913); 0 is the air around the head.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AIR_CAVITY",
    "AIR_CHI_PPM",
    "LESION",
    "SCALP",
    "SKULL",
    "TISSUES",
    "Tissue",
    "VEINS",
    "label_names",
]

#: Air relative to water/CSF (ppm, SI): χ_air (+0.36) − χ_water (−9.05).
AIR_CHI_PPM = 9.4


@dataclass(frozen=True)
class Tissue:
    """Properties of one label: χ (ppm vs CSF), R2* (Hz at 3 T), proton density (CSF = 1), T1 (s)."""

    name: str
    chi_ppm: float
    r2star_hz: float
    m0: float
    t1_s: float


def _pair(left, right, name, chi, r2s, m0, t1):
    return {left: Tissue(f"Left-{name}", chi, r2s, m0, t1), right: Tissue(f"Right-{name}", chi, r2s, m0, t1)}


#: Label id → tissue properties. FreeSurfer ids and names (FreeSurfer 7 spelling
#: ``Left-Thalamus``; FreeSurfer ≤ 6 calls it ``Left-Thalamus-Proper``, same id) plus the
#: compendium's extra ids 901–908 (veins) and 911–913 (skull, scalp, air cavities); 0 is the air
#: around the head. χ: WM −0.03, cortex +0.02, thalamus +0.04, caudate +0.07, putamen +0.06,
#: pallidum +0.15, CSF 0, veins +0.45 (venous blood, Hct 0.4, 60 % saturation), MS lesions 0.00
#: (+30 ppb vs WM), air +9.4, bone −2.0. R2* (Hz) and T1 (s) are typical 3 T values.
TISSUES: dict[int, Tissue] = {
    0: Tissue("Air", AIR_CHI_PPM, 0.0, 0.0, 1.0),
    **_pair(2, 41, "Cerebral-White-Matter", -0.03, 20.0, 0.69, 0.85),
    **_pair(3, 42, "Cerebral-Cortex", 0.02, 15.0, 0.80, 1.35),
    **_pair(4, 43, "Lateral-Ventricle", 0.0, 3.0, 1.0, 4.0),
    **_pair(5, 44, "Inf-Lat-Vent", 0.0, 3.0, 1.0, 4.0),
    **_pair(7, 46, "Cerebellum-White-Matter", -0.03, 20.0, 0.69, 0.85),
    **_pair(8, 47, "Cerebellum-Cortex", 0.01, 15.0, 0.82, 1.35),
    **_pair(10, 49, "Thalamus", 0.04, 20.0, 0.77, 1.05),
    **_pair(11, 50, "Caudate", 0.07, 22.0, 0.82, 1.25),
    **_pair(12, 51, "Putamen", 0.06, 26.0, 0.80, 1.15),
    **_pair(13, 52, "Pallidum", 0.15, 38.0, 0.74, 0.95),
    14: Tissue("3rd-Ventricle", 0.0, 3.0, 1.0, 4.0),
    15: Tissue("4th-Ventricle", 0.0, 3.0, 1.0, 4.0),
    16: Tissue("Brain-Stem", -0.02, 22.0, 0.72, 0.95),
    **_pair(17, 53, "Hippocampus", 0.01, 15.0, 0.84, 1.30),
    **_pair(18, 54, "Amygdala", 0.01, 16.0, 0.83, 1.30),
    24: Tissue("CSF", 0.0, 3.0, 1.0, 4.0),
    **_pair(26, 58, "Accumbens-area", 0.03, 18.0, 0.82, 1.25),
    **_pair(28, 60, "VentralDC", 0.08, 28.0, 0.74, 1.00),
    **_pair(31, 63, "choroid-plexus", 0.0, 20.0, 0.85, 1.50),
    77: Tissue("WM-hypointensities", 0.0, 14.0, 0.82, 1.20),
    85: Tissue("Optic-Chiasm", -0.03, 20.0, 0.69, 0.85),
    251: Tissue("CC_Posterior", -0.03, 20.0, 0.69, 0.85),
    252: Tissue("CC_Mid_Posterior", -0.03, 20.0, 0.69, 0.85),
    253: Tissue("CC_Central", -0.03, 20.0, 0.69, 0.85),
    254: Tissue("CC_Mid_Anterior", -0.03, 20.0, 0.69, 0.85),
    255: Tissue("CC_Anterior", -0.03, 20.0, 0.69, 0.85),
    901: Tissue("Left-Internal-Cerebral-Vein", 0.45, 45.0, 0.85, 1.60),
    902: Tissue("Right-Internal-Cerebral-Vein", 0.45, 45.0, 0.85, 1.60),
    903: Tissue("Left-Basal-Vein-of-Rosenthal", 0.45, 45.0, 0.85, 1.60),
    904: Tissue("Right-Basal-Vein-of-Rosenthal", 0.45, 45.0, 0.85, 1.60),
    905: Tissue("Great-Cerebral-Vein", 0.45, 45.0, 0.85, 1.60),
    906: Tissue("Left-Thalamostriate-Vein", 0.45, 45.0, 0.85, 1.60),
    907: Tissue("Right-Thalamostriate-Vein", 0.45, 45.0, 0.85, 1.60),
    908: Tissue("Medullary-Veins", 0.45, 45.0, 0.85, 1.60),
    911: Tissue("Skull", -2.0, 500.0, 0.05, 0.30),
    912: Tissue("Scalp-Soft-Tissue", 0.0, 30.0, 0.70, 0.90),
    913: Tissue("Air-Cavity", AIR_CHI_PPM, 0.0, 0.0, 1.0),
}

#: All vein ids. 906-908 (thalamostriate veins, medullary veins) occur in the realistic phantom only.
VEINS = (901, 902, 903, 904, 905, 906, 907, 908)
LESION = 77
SKULL, SCALP, AIR_CAVITY = 911, 912, 913


def label_names():
    """Mapping label id → structure name for every label the phantom can contain."""
    return {k: t.name for k, t in TISSUES.items()}
