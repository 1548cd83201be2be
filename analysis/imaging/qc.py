"""Per-subject quality-control reports: one HTML page per subject, linked from an index page.

What a reviewer checks before trusting a subject's number, in the order the data flowed:

1. the GRE magnitude (echo-combined) with the QSM brain mask;
2. the local field (Hz or ppm), if the QSM derivatives hold it;
3. the χ map;
4. the thalamic VOI (green), the voxels excluded as veins (red) and the CSF reference spheres
   (cyan) on χ, at the thalamic level and through each CSF sphere;
5. the registration of the anatomy to the GRE (the overlay written by the registration step);

then the numbers (relative χ, thalamus and CSF means, voxel counts, registration quality). The
pages are self-contained HTML with PNG mosaics beside them (like the reports users know from
fMRIPrep or QSMxT), written atomically; :func:`write_index` lists the subjects with their
numbers and flags.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np

from analysis.imaging.figures import CSF_REFERENCE_COLOR, THALAMUS_COLOR, VEIN_COLOR
from analysis.io import savefig, write_text

__all__ = ["subject_mosaic", "write_subject_report", "write_index", "load_on_grid"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
.flag { color: #b00; font-weight: bold; } .ok { color: #080; } img { max-width: 100%; }
.note { color: #555; font-size: 0.9em; }
"""


def _data(img):
    return None if img is None else np.asarray(img.dataobj, dtype=np.float64)


def _levels(mask, n, axis=2):
    """``n`` slice indices through the mask along ``axis`` (evenly over its extent)."""
    idx = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    if not len(idx):
        return [mask.shape[axis] // 2] * n
    return [int(round(v)) for v in np.linspace(idx[0], idx[-1], n + 2)[1:-1]]


def _show(ax, data, k, *, cmap="gray", vmin=None, vmax=None):
    sl = np.take(data, k, axis=2).T
    im = ax.imshow(sl, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _contour(ax, mask, k, color, lw=1.0):
    sl = np.take(mask, k, axis=2).astype(float).T
    if sl.any():
        ax.contour(sl, levels=[0.5], colors=[color], linewidths=lw)


def subject_mosaic(path, *, chi_img, mask_img=None, magnitude_img=None, field_img=None, rois=None, n_slices=5,
                   chi_range_ppm=0.15, field_unit="Hz"):
    """PNG mosaic of one subject: magnitude + mask, local field, χ, and the ROIs on χ.

    Parameters
    ----------
    path : str or Path
        PNG to write.
    chi_img : nibabel image
        χ map (ppm).
    mask_img, magnitude_img, field_img : nibabel image, optional
        QSM brain mask, echo-combined magnitude and local field, on the χ grid.
    rois : analysis.imaging.roi.ThalamicROIs, optional
        ROIs on the χ grid (VOI, veins, CSF spheres).
    n_slices : int
        Axial slices per row.
    chi_range_ppm : float
        χ display range ±.
    field_unit : str
        Unit of ``field_img`` for the colour bar.

    Returns
    -------
    Path
    """
    chi = np.nan_to_num(_data(chi_img))
    mask = _data(mask_img) > 0 if mask_img is not None else np.isfinite(_data(chi_img)) & (_data(chi_img) != 0)
    rows = [r for r in ("magnitude", "field", "chi") if r == "chi" or {"magnitude": magnitude_img,
                                                                       "field": field_img}[r] is not None]
    if rois is not None:
        rows.append("rois")
    levels = _levels(mask, n_slices)
    fig, axes = plt.subplots(len(rows), n_slices, figsize=(2.2 * n_slices, 2.4 * len(rows)), squeeze=False,
                             facecolor="k")
    for r, row in enumerate(rows):
        for c, k in enumerate(levels if row != "rois" else _roi_levels(rois, n_slices)):
            ax = axes[r, c]
            ax.set_facecolor("k")
            if row == "magnitude":
                mag = _data(magnitude_img)
                im = _show(ax, mag, k, vmax=np.percentile(mag[mask], 99.5) if mask.any() else None)
                _contour(ax, mask, k, "#ffcc00")
            elif row == "field":
                fld = _data(field_img)
                lim = float(np.percentile(np.abs(fld[mask]), 99)) if mask.any() else 1.0
                im = _show(ax, fld, k, cmap="RdBu_r", vmin=-lim, vmax=lim)
            else:
                im = _show(ax, chi, k, vmin=-chi_range_ppm, vmax=chi_range_ppm)
                if row == "rois":
                    _contour(ax, rois.thalamus(exclude_veins=False), k, THALAMUS_COLOR)
                    _contour(ax, rois.vein(), k, VEIN_COLOR)
                    _contour(ax, rois.csf_reference(), k, CSF_REFERENCE_COLOR)
            if c == 0:
                label = {"magnitude": "magnitude + mask", "field": f"local field ({field_unit})",
                         "chi": "χ (ppm)", "rois": "VOI / veins / CSF"}[row]
                ax.set_ylabel(label, color="w")
        cb = fig.colorbar(im, ax=list(axes[r]), fraction=0.015, pad=0.01)
        cb.ax.tick_params(colors="w", labelsize=7)
    fig.text(0.01, 0.005, "VOI green, excluded veins red, CSF spheres cyan; axial slices in voxel order",
             color="w", fontsize=8)
    out = savefig(fig, path, dpi=110, facecolor="k")
    plt.close(fig)
    return out


def _roi_levels(rois, n):
    """Slices through the thalamic VOI and the CSF spheres."""
    thal, csf = rois.thalamus(exclude_veins=False), rois.csf_reference()
    ks = _levels(thal, max(n - 2, 1))
    idx = np.flatnonzero(csf.any(axis=(0, 1)))
    if len(idx):
        ks += [int(idx[0]), int(idx[-1])]
    ks = sorted(set(ks))
    while len(ks) < n:
        ks.append(ks[-1])
    return ks[:n]


def _number_rows(numbers):
    out = []
    for k, v in numbers.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        out.append(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>")
    return "\n".join(out)


def write_subject_report(out_dir, subject_id, *, numbers, mosaic_png=None, registration_png=None, flags=(),
                         notes=()):
    """Write ``out_dir/<subject_id>.html`` (with its figures beside it).

    Parameters
    ----------
    out_dir : str or Path
        Report folder.
    subject_id : str
        E.g. ``sub-01``.
    numbers : dict
        Measured values and QC figures shown as a table (ppb, mm³, mL, voxel counts, …).
    mosaic_png, registration_png : str or Path, optional
        Figures (in ``out_dir``) to show: the :func:`subject_mosaic` and the registration overlay.
    flags : sequence of str
        Problems to show at the top in red (e.g. a poor registration).
    notes : sequence of str
        Further remarks (units, files used).

    Returns
    -------
    Path
    """
    out_dir = Path(out_dir)
    sid = html.escape(str(subject_id))

    def img(p, alt):
        return "" if p is None else f'<img src="{html.escape(Path(p).name)}" alt="{alt}">'

    flag_html = "".join(f'<p class="flag">⚠ {html.escape(f)}</p>' for f in flags) or '<p class="ok">no flags</p>'
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>QC {sid}</title><style>{_STYLE}</style></head>
<body><p><a href="index.html">← all subjects</a></p>
<h1>Quality control: {sid}</h1>
{flag_html}
<h2>Numbers</h2><table>{_number_rows(numbers)}</table>
<h2>Magnitude, field, χ and the ROIs</h2>{img(mosaic_png, "mosaic")}
<h2>Registration of the anatomy to the GRE</h2>{img(registration_png, "registration overlay") or
        '<p class="note">no registration (segmentation given as already registered)</p>'}
{"".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)}
</body></html>
"""
    return write_text(out_dir / f"{subject_id}.html", body)


def write_index(out_dir, rows, *, title="Quality control", columns=None, notes=()):
    """Write ``out_dir/index.html``: one line per subject, linked to its page.

    Parameters
    ----------
    out_dir : str or Path
    rows : sequence of dict
        Each with ``subject_id``, optional ``flags`` (list of str) and the values to show.
    title : str
    columns : sequence of str, optional
        Keys to show (default: every key of the first row but ``flags``).
    notes : sequence of str
        Paragraphs under the title (e.g. what is simulated).

    Returns
    -------
    Path
    """
    rows = list(rows)
    if columns is None:
        columns = [k for k in (rows[0] if rows else {}) if k not in ("subject_id", "flags")]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["subject", *columns, "flags"])
    lines = []
    for r in rows:
        sid = html.escape(str(r["subject_id"]))
        cells = []
        for c in columns:
            v = r.get(c, "")
            cells.append(f"<td>{v:.4g}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>")
        flags = r.get("flags") or []
        f = f'<td class="flag">{html.escape("; ".join(flags))}</td>' if flags else '<td class="ok">ok</td>'
        lines.append(f'<tr><td><a href="{sid}.html">{sid}</a></td>{"".join(cells)}{f}</tr>')
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
{"".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)}
<table><tr>{head}</tr>
{chr(10).join(lines)}
</table></body></html>
"""
    return write_text(Path(out_dir) / "index.html", body)


def load_on_grid(path, reference_img):
    """Load an image if it exists and lies on ``reference_img``'s grid (else ``None``)."""
    if path is None or not Path(path).is_file():
        return None
    img = nib.load(str(path))
    if img.shape[:3] != reference_img.shape[:3] or not np.allclose(img.affine, reference_img.affine, atol=1e-3):
        return None
    data = np.asarray(img.dataobj)
    return nib.Nifti1Image(data.reshape(data.shape[:3]) if data.ndim == 4 else data, img.affine)
