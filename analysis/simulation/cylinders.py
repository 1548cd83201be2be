"""Cylinders and spheres in water: a small MEGRE dataset written the way other tools write BIDS.

A test object for the reconstruction *outside* the head phantom it was developed on, shaped
like the phantoms QSM papers scan: an ellipsoidal container of (doped) water in air holding
cylinders at several orientations to B0 and spheres, each with a known susceptibility. It has
no CSF (the water's R2* is above MEDI+0's 5 s⁻¹ CSF threshold), so the default recipe must
fall back from MEDI+0 to MEDI.

Unlike :func:`analysis.simulation.bids_dataset.write_megre_subject`, the files are written as a
DICOM converter (dcm2niix) writes them, not by the compendium's own BIDS writer:

* subject label ``1`` (``sub-1``), uncompressed ``.nii``;
* magnitude as int16; phase as int16 in −4096…4094 (raw 0…4095 with ``scl_slope`` 2 and
  ``scl_inter`` −4096, as Siemens phase converts), sidecars **without** ``Units`` (the reader
  rescales the phase and notes it);
* sidecars with the converter's fields (``Modality``, ``Manufacturer``, ``ImageType`` with
  ``M``/``P``, ``EchoNumber``, ``EchoTime`` …) and a scanner-space affine (qform/sform code 1)
  whose third axis is the scanner z, i.e. B0.

The truth (χ in ppm relative to water, and a label image) goes to
``derivatives/truth/sub-1/anat/`` beside it; :func:`load_cylinder_truth` reads it back.

Physics as :mod:`analysis.simulation.acquisition`: field = dipole kernel ⊛ χ (air outside the
container at +9.4 ppm relative to water, computed with generous zero padding), signal
``M0 · exp(−R2* TE) · exp(i (φ0 + 2π γ̄ B0 field TE))`` with a smooth (quadratic) phase offset
φ0, complex Gaussian noise of σ = mean first-echo water magnitude / SNR.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from analysis.imaging.qsm.kernels import GAMMA_HZ_PER_T, forward_field

__all__ = ["CYLINDER_OBJECTS", "CylinderDataset", "cylinder_phantom", "write_cylinder_dataset", "load_cylinder_truth"]

#: χ of air relative to water (ppm).
_AIR_CHI_PPM = 9.4
#: Water (label 1) and air (label 0) properties: M0, R2* (1/s).
_WATER = {"m0": 1.0, "r2star": 12.0}
#: The objects: name, kind, centre (mm from the grid centre, x y z), axis angle to B0 (deg, in
#: the x–z plane; cylinders), radius (mm), half-length (mm; cylinders), χ (ppm, relative to
#: water), M0, R2* (1/s). Cylinders parallel (0°), at 30°, at the magic angle (54.7°, no
#: external field) and perpendicular (90°) to B0.
CYLINDER_OBJECTS = (
    {"name": "cylinder_0deg", "kind": "cylinder", "centre": (-11.0, -11.0, 0.0), "angle_deg": 0.0,
     "radius_mm": 3.5, "half_length_mm": 12.0, "chi_ppm": 0.10, "m0": 0.85, "r2star": 18.0},
    {"name": "cylinder_30deg", "kind": "cylinder", "centre": (10.0, -11.0, 0.0), "angle_deg": 30.0,
     "radius_mm": 3.5, "half_length_mm": 10.0, "chi_ppm": 0.30, "m0": 0.80, "r2star": 25.0},
    {"name": "cylinder_55deg", "kind": "cylinder", "centre": (-10.0, 11.0, -1.0), "angle_deg": 54.7,
     "radius_mm": 3.5, "half_length_mm": 10.0, "chi_ppm": 0.20, "m0": 0.82, "r2star": 22.0},
    {"name": "cylinder_90deg", "kind": "cylinder", "centre": (10.0, 11.0, -6.0), "angle_deg": 90.0,
     "radius_mm": 3.5, "half_length_mm": 10.0, "chi_ppm": 0.40, "m0": 0.78, "r2star": 28.0},
    {"name": "sphere_small", "kind": "sphere", "centre": (0.0, 0.0, 12.0), "radius_mm": 4.5, "chi_ppm": 0.05,
     "m0": 0.88, "r2star": 15.0},
    {"name": "sphere_mid", "kind": "sphere", "centre": (0.0, 0.0, -10.0), "radius_mm": 4.5, "chi_ppm": 0.15,
     "m0": 0.84, "r2star": 20.0},
    {"name": "sphere_high", "kind": "sphere", "centre": (10.0, 11.0, 9.0), "radius_mm": 4.5, "chi_ppm": 0.25,
     "m0": 0.80, "r2star": 24.0},
)


@dataclass
class CylinderDataset:
    """A written cylinder dataset and its truth.

    Attributes
    ----------
    bids_dir : Path
    chi_ppm : ndarray, float32, shape (X, Y, Z)
        χ (ppm) relative to water (air +9.4 ppm outside the container).
    labels : ndarray, int16
        0 air, 1 water, 2… the objects in the order of ``objects``.
    objects : pandas.DataFrame
        One row per object: ``label, name, kind, angle_deg, chi_ppm, n_voxels``.
    container : ndarray of bool
        Water and objects.
    affine : ndarray, shape (4, 4)
    echo_times_s : ndarray
    files : list of Path
    """

    bids_dir: Path
    chi_ppm: np.ndarray
    labels: np.ndarray
    objects: pd.DataFrame
    container: np.ndarray
    affine: np.ndarray
    echo_times_s: np.ndarray
    files: list


def _coords(shape, voxel_size_mm):
    """Voxel centre coordinates (mm) relative to the grid centre, each of shape ``shape``."""
    return [((np.arange(n, dtype=np.float64) - (n - 1) / 2.0) * voxel_size_mm)[
        tuple(slice(None) if a == i else None for a in range(3))] for i, n in enumerate(shape)]


def cylinder_phantom(shape=(64, 64, 64), voxel_size_mm=1.0, objects=CYLINDER_OBJECTS,
                     container_semi_axes_mm=(29.0, 29.0, 26.0)):
    """χ, labels, M0 and R2* of the container with its objects (B0 along the third axis).

    Parameters
    ----------
    shape : tuple of 3 int
        Grid.
    voxel_size_mm : float
        Isotropic voxel size (mm).
    objects : sequence of dict
        As :data:`CYLINDER_OBJECTS`.
    container_semi_axes_mm : tuple of 3 float
        Semi-axes of the ellipsoidal water container (mm).

    Returns
    -------
    dict
        ``chi_ppm``, ``labels``, ``m0``, ``r2star`` (arrays) and ``objects`` (DataFrame).
    """
    x, y, z = _coords(shape, float(voxel_size_mm))
    ax, ay, az = container_semi_axes_mm
    container = (x / ax) ** 2 + (y / ay) ** 2 + (z / az) ** 2 <= 1.0
    labels = np.where(container, 1, 0).astype(np.int16)
    chi = np.where(container, 0.0, _AIR_CHI_PPM).astype(np.float32)
    m0 = np.where(container, _WATER["m0"], 0.0).astype(np.float32)
    r2 = np.where(container, _WATER["r2star"], 0.0).astype(np.float32)
    rows = []
    for k, obj in enumerate(objects):
        cx, cy, cz = obj["centre"]
        dx, dy, dz = x - cx, y - cy, z - cz
        if obj["kind"] == "sphere":
            inside = dx**2 + dy**2 + dz**2 <= obj["radius_mm"] ** 2
            angle = np.nan
        elif obj["kind"] == "cylinder":
            angle = float(obj["angle_deg"])
            a = np.deg2rad(angle)
            u = (np.sin(a), 0.0, np.cos(a))            # axis in the x-z plane, angle to B0 (z)
            t = dx * u[0] + dy * u[1] + dz * u[2]
            r2d = dx**2 + dy**2 + dz**2 - t**2
            inside = (r2d <= obj["radius_mm"] ** 2) & (np.abs(t) <= obj["half_length_mm"])
        else:
            raise ValueError(f"object kind must be 'sphere' or 'cylinder', got {obj['kind']!r}")
        inside = np.broadcast_to(inside, shape)
        if np.any(inside & (labels != 1)):
            raise ValueError(f"object {obj['name']!r} overlaps another object or leaves the container")
        label = k + 2
        labels[inside] = label
        chi[inside] = obj["chi_ppm"]
        m0[inside] = obj["m0"]
        r2[inside] = obj["r2star"]
        rows.append({"label": label, "name": obj["name"], "kind": obj["kind"], "angle_deg": angle,
                     "chi_ppm": float(obj["chi_ppm"]), "n_voxels": int(inside.sum())})
    return {"chi_ppm": chi, "labels": labels, "m0": m0, "r2star": r2, "objects": pd.DataFrame(rows),
            "container": container}


def _phase_offset(shape, rng):
    """Smooth receive-phase offset (rad): constant, linear and quadratic terms over the grid."""
    u = [np.linspace(-1.0, 1.0, n)[tuple(slice(None) if a == i else None for a in range(3))]
         for i, n in enumerate(shape)]
    phi = np.full(shape, rng.uniform(-np.pi, np.pi))
    for i in range(3):
        phi = phi + rng.normal(0.0, 0.8) * u[i]
        for j in range(i, 3):
            phi = phi + rng.normal(0.0, 0.4) * u[i] * u[j]
    return phi


def _write_json(path, obj):
    Path(path).write_text(json.dumps(obj, indent=1) + "\n")
    return Path(path)


def _save(arr, affine, path, *, slope=1.0, inter=0.0):
    img = nib.Nifti1Image(np.asarray(arr, np.int16), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header.set_slope_inter(slope, inter)
    nib.save(img, str(path))
    return Path(path)


def write_cylinder_dataset(out_dir, *, seed=0, snr=100.0, shape=(64, 64, 64), voxel_size_mm=1.0, n_echoes=8,
                           first_te_s=0.003, echo_spacing_s=0.004, b0_tesla=3.0, objects=CYLINDER_OBJECTS):
    """Simulate the cylinder phantom's MEGRE acquisition and write it as a converter would.

    Parameters
    ----------
    out_dir : str or Path
        Dataset root (created; an existing ``sub-1`` is refused).
    seed : int
        Seed of the phase offset and the noise.
    snr : float or None
        First-echo SNR in water (``None``: noise-free).
    shape : tuple of 3 int
        Grid (default 64³).
    voxel_size_mm : float
        Isotropic voxel (mm).
    n_echoes : int
        Number of echoes (default 8: 3, 7, …, 31 ms).
    first_te_s, echo_spacing_s : float
        Echo times (s).
    b0_tesla : float
        Field strength (T), along the scanner z axis = the images' third axis.
    objects : sequence of dict
        As :data:`CYLINDER_OBJECTS`.

    Returns
    -------
    CylinderDataset
    """
    root = Path(out_dir)
    anat = root / "sub-1" / "anat"
    if anat.exists() and any(anat.iterdir()):
        raise ValueError(f"{anat} already holds files; refusing to write over them")
    if int(n_echoes) < 2:
        raise ValueError(f"n_echoes must be at least 2, got {n_echoes!r}")
    vs = float(voxel_size_mm)
    ph = cylinder_phantom(shape, vs, objects)
    rng = np.random.default_rng(seed)
    field = forward_field(ph["chi_ppm"] - np.float32(_AIR_CHI_PPM), voxel_size=(vs, vs, vs),
                          pad=max(shape))  # the container in an infinite air space
    te = first_te_s + echo_spacing_s * np.arange(int(n_echoes))
    phi0 = _phase_offset(shape, rng)
    omega = 2 * np.pi * GAMMA_HZ_PER_T * b0_tesla * 1e-6 * field.astype(np.float64)
    sigma = 0.0
    if snr is not None:
        if not snr > 0:
            raise ValueError(f"snr must be positive or None, got {snr!r}")
        mag1 = ph["m0"] * np.exp(-ph["r2star"] * te[0])
        sigma = float(mag1[ph["labels"] == 1].mean()) / float(snr)
    # scanner-like geometry: LPS-flipped axes, an offset centre; voxel z = scanner z = B0
    affine = np.diag([-vs, -vs, vs, 1.0])
    affine[:3, 3] = [(shape[0] - 1) / 2 * vs + 3.2, (shape[1] - 1) / 2 * vs - 12.5, -(shape[2] - 1) / 2 * vs + 20.0]
    root.mkdir(parents=True, exist_ok=True)
    files = [_write_json(root / "dataset_description.json",
                         {"Name": "Cylinders and spheres in water (simulated)", "BIDSVersion": "1.8.0",
                          "DatasetType": "raw"})]
    anat.mkdir(parents=True, exist_ok=True)
    common = {"Modality": "MR", "MagneticFieldStrength": b0_tesla, "Manufacturer": "Siemens",
              "ManufacturersModelName": "simulated", "MRAcquisitionType": "3D", "SeriesDescription": "gre_me_qsm",
              "ScanningSequence": "GR", "SequenceVariant": "SP", "RepetitionTime": 0.04, "FlipAngle": 15,
              "ConversionSoftware": "dcm2niix-like (analysis.simulation.cylinders)"}
    mags, phases = [], []
    for t in te:
        s = ph["m0"] * np.exp(-ph["r2star"] * t) * np.exp(1j * (phi0 + omega * t))
        if sigma > 0:
            s = s + sigma * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
        mags.append(np.abs(s))
        phases.append(np.angle(s))
    mag_scale = 3000.0 / max(float(np.max(mags)), 1e-12)
    for n, t in enumerate(te):
        stem = f"sub-1_echo-{n + 1}_part-"
        _save(np.round(mags[n] * mag_scale), affine, anat / f"{stem}mag_MEGRE.nii")
        raw = np.mod(np.round((phases[n] + np.pi) * 4096.0 / (2 * np.pi)), 4096)   # 12-bit 0…4095
        _save(raw, affine, anat / f"{stem}phase_MEGRE.nii", slope=2.0, inter=-4096.0)
        for part, kind in (("mag", "M"), ("phase", "P")):
            side = dict(common, EchoNumber=n + 1, EchoTime=round(float(t), 6),
                        ImageType=["ORIGINAL", "PRIMARY", kind, "ND"])
            files.append(anat / f"{stem}{part}_MEGRE.nii")
            files.append(_write_json(anat / f"{stem}{part}_MEGRE.json", side))
    truth = root / "derivatives" / "truth"
    tanat = truth / "sub-1" / "anat"
    tanat.mkdir(parents=True, exist_ok=True)
    files.append(_write_json(truth / "dataset_description.json",
                             {"Name": "Cylinder phantom truth", "BIDSVersion": "1.8.0", "DatasetType": "derivative",
                              "GeneratedBy": [{"Name": "analysis.simulation.cylinders"}]}))
    for arr, name in ((np.where(ph["container"], ph["chi_ppm"], 0.0).astype(np.float32), "sub-1_Chimap.nii"),
                      (ph["labels"], "sub-1_dseg.nii")):
        img = nib.Nifti1Image(arr, affine)
        img.header.set_qform(affine, code=1)
        img.header.set_sform(affine, code=1)
        nib.save(img, str(tanat / name))
        files.append(tanat / name)
    ph["objects"].to_csv(tanat / "sub-1_objects.tsv", sep="\t", index=False)
    files.append(tanat / "sub-1_objects.tsv")
    files.append(_write_json(tanat / "sub-1_Chimap.json",
                             {"Units": "ppm", "Reference": "water", "Seed": seed, "SNR": snr,
                              "EchoTimes": [float(v) for v in te], "NoiseSigma": sigma}))
    return CylinderDataset(bids_dir=root, chi_ppm=ph["chi_ppm"], labels=ph["labels"], objects=ph["objects"],
                           container=ph["container"], affine=affine, echo_times_s=te, files=files)


def load_cylinder_truth(bids_dir):
    """The truth written by :func:`write_cylinder_dataset`: ``chi_ppm``, ``labels``, ``objects``."""
    tanat = Path(bids_dir) / "derivatives" / "truth" / "sub-1" / "anat"
    chi = np.asarray(nib.load(str(tanat / "sub-1_Chimap.nii")).dataobj, dtype=np.float32)
    labels = np.asarray(nib.load(str(tanat / "sub-1_dseg.nii")).dataobj).astype(np.int16)
    objects = pd.read_csv(tanat / "sub-1_objects.tsv", sep="\t")
    return {"chi_ppm": chi, "labels": labels, "objects": objects}
