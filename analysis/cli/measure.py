"""``python -m analysis measure QSM_DIR SUBJECTS_DIR OUT.csv``: QSM derivatives + FreeSurfer + lesion
masks (+ clinical CSV) → the cohort CSV of the statistics notebooks.

Thin over :func:`analysis.cohort.measure.run_measure`.
"""

from __future__ import annotations

from analysis.cli._common import setup_logging
from analysis.cohort.measure import run_measure

__all__ = ["add_parser"]


def _cmd_measure(args):
    setup_logging()
    roi = {"exclude_veins": not args.no_vein_exclusion}
    if args.vein_threshold_mad is not None:
        roi["vein_threshold_mad"] = args.vein_threshold_mad
    if args.csf_radius is not None:
        roi["csf_radius_mm"] = args.csf_radius
    res = run_measure(args.qsm_dir, args.subjects_dir, args.output, lesion_mask=args.lesion_mask,
                      clinical=args.clinical, aseg=args.aseg, freesurfer_subject=args.freesurfer_subject,
                      participant_label=args.participant_label or None, session=args.session,
                      allow_missing=args.allow_missing, progress=not args.no_progress,
                      register=not args.no_registration, overwrite=args.overwrite, qc=not args.no_qc, **roi)
    kind = "cohort" if args.clinical else "imaging"
    print(f"wrote {res['n']} subject(s) to {res['output']} ({kind} columns) and {res['measurements']}")
    if res["qc"] is not None:
        print(f"QC report: {res['qc'] / 'index.html'}")
    if res["failures"]:
        print(f"{len(res['failures'])} subject(s) left out: " + "; ".join(res["failures"]))


def add_parser(subparsers):
    """Register ``measure`` on an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "measure", help="FreeSurfer stats + thalamic χ + lesion volume per subject → the cohort CSV",
        description="Measure thalamic volume, total grey-matter volume, cortical thickness (FreeSurfer), "
                    "relative thalamic susceptibility (ppb; veins excluded, atrial CSF reference) and T2 "
                    "lesion volume (mL) for every χ map of a QSM derivative dataset, and write the cohort "
                    "CSV of the statistics notebooks. Templates take {subject} (sub-01) and {label} (01).")
    p.add_argument("qsm_dir", help="QSM derivatives: sub-<L>/anat/sub-<L>_Chimap.nii.gz (+ _desc-brain_mask)")
    p.add_argument("subjects_dir", help="FreeSurfer SUBJECTS_DIR (one folder per subject with stats/ and mri/)")
    p.add_argument("output", help="CSV to write (e.g. data/my-cohort.csv); <stem>_measurements.csv goes beside it")
    p.add_argument("--lesion-mask", required=True, metavar="TEMPLATE",
                   help="each subject's T2 lesion mask, e.g. 'lesions/{subject}_mask.nii.gz'")
    p.add_argument("--clinical", metavar="CSV",
                   help="clinical table (subject_id, age_years, sex, edss, disease_duration_years, dmt_use, "
                        "enhancing_lesions_present): merged into the full cohort format and validated")
    p.add_argument("--aseg", metavar="TEMPLATE",
                   help="segmentation already registered to the χ map (then no registration is done)")
    p.add_argument("--no-registration", action="store_true",
                   help="use each subject's mri/aseg.mgz as it is, without registering the anatomy to the GRE "
                        "(right only when T1 and GRE share scanner coordinates). Default: rigid registration "
                        "(mutual information) of mri/brain.mgz (or norm.mgz, T1.mgz) to the QSM derivative's "
                        "echo-combined magnitude (*_T2starw.nii.gz)")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run")
    p.add_argument("--no-qc", action="store_true",
                   help="do not write the QC report (<output stem>_qc/: registration overlays, mosaics, HTML)")
    p.add_argument("--freesurfer-subject", metavar="TEMPLATE",
                   help="subject folder name in SUBJECTS_DIR (default: sub-<L>, else <L>)")
    p.add_argument("--participant-label", "--participant_label", nargs="+", metavar="L",
                   help="only these participants")
    p.add_argument("--session", "--session-label", "--session_label", dest="session",
                   help="only this session (needed when a participant has several χ maps)")
    p.add_argument("--no-vein-exclusion", action="store_true", help="keep veins in the thalamic VOI")
    p.add_argument("--vein-threshold-mad", type=float, default=None, metavar="K",
                   help="vein threshold median + K × 1.4826 MAD (default 3)")
    p.add_argument("--csf-radius", type=float, default=None, metavar="MM", help="CSF sphere radius (default 3 mm)")
    p.add_argument("--allow-missing", action="store_true",
                   help="write the subjects that could be measured even if others failed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_measure)
    return subparsers
