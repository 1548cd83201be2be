"""``python -m analysis qsm BIDS_DIR OUT_DIR``: χ maps for every MEGRE series of a BIDS dataset.

Thin over :func:`analysis.imaging.reconstruct.reconstruct_dataset`.
"""

from __future__ import annotations

import argparse

from analysis.cli._common import setup_logging
from analysis.imaging.qsm.recipes import METHOD_NAMES, RECIPES, check_lambda
from analysis.imaging.reconstruct import reconstruct_dataset

__all__ = ["add_parser"]

DESCRIPTION = """\
Reconstruct every multi-echo GRE series (anat/*_echo-<n>_part-{mag,phase}_MEGRE.nii[.gz]) of a
BIDS dataset and write BIDS derivatives OUT_DIR/sub-<L>/anat/sub-<L>_Chimap.nii.gz (ppm), a brain
mask and a JSON sidecar. B0 is taken along the scanner z axis of each image's affine (right for
data in scanner space, as converted from DICOM).

The default recipe is the MEDI toolbox's whole-brain one: PDF background removal, MEDI+0 (CSF
mask from R2*), SMV 5 mm, MERIT, lambda 1000, with PDF run to 100 iterations and chi given on the
whole brain mask (the rim the SMV high-pass erodes is filled by a second MEDI pass);
--recipe medi-full-process is MEDI_full_process itself (chi on the mask eroded by 5 mm);
--recipe plain is PDF + MEDI alone. Where MEDI+0 finds no CSF (R2* < 5 1/s; e.g. a phantom in
water) it falls back to MEDI with a warning and a sidecar note; --csf-mask-dir gives a CSF (reference) mask instead. Any
option given explicitly (--method, --background, --lambda, --smv-radius, --[no-]merit)
overrides the recipe.
"""


def _cmd_qsm(args):
    setup_logging()
    extra = {"unwrap": args.unwrap, "background": args.background, "smv_radius_mm": args.smv_radius,
             "merit": args.merit}
    res = reconstruct_dataset(args.bids_dir, args.out_dir, participant_label=args.participant_label or None,
                              session_label=args.session_label or None, phase_sign=args.phase_sign,
                              n_procs=args.n_procs, recipe=args.recipe, method=args.method, lambda_=args.lambda_,
                              b0_tesla=args.b0_tesla,
                              min_echoes=args.min_echoes, brain_mask_dir=args.brain_mask_dir,
                              csf_mask_dir=args.csf_mask_dir,
                              save_fields=not args.no_fields, progress=not args.no_progress, **extra)
    for r in res:
        print(f"{r['series']}: wrote {len(r['files'])} files in {r['seconds']:.1f} s")


def add_parser(subparsers):
    """Register ``qsm`` on an argparse ``subparsers`` object."""
    p = subparsers.add_parser("qsm", help="reconstruct susceptibility maps from a BIDS dataset (MEGRE)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bids_dir", help="BIDS dataset with sub-*/anat/*_echo-<n>_part-{mag,phase}_MEGRE.nii[.gz]")
    p.add_argument("out_dir", help="output derivative dataset (e.g. BIDS_DIR/derivatives/qsm): new, empty, or "
                                   "written by this command before (another pipeline's folder is refused)")
    p.add_argument("--participant-label", "--participant_label", nargs="+", metavar="L",
                   help="only these participants (with or without sub-)")
    p.add_argument("--session-label", "--session_label", nargs="+", metavar="S",
                   help="only these sessions (with or without ses-)")
    p.add_argument("--n-procs", "--n_procs", type=int, default=1, metavar="N",
                   help="series reconstructed in parallel (default 1)")
    p.add_argument("--phase-sign", type=int, choices=(1, -1), default=1,
                   help="multiply the phase by this sign: scanners differ in their phase polarity. Each chi map "
                        "is checked (veins and deep grey matter must come out paramagnetic) and a suspect one "
                        "is flagged in the log and the sidecar; then rerun with --phase-sign -1 (default 1)")
    p.add_argument("--recipe", choices=tuple(RECIPES), default="whole-brain",
                   help="named defaults: whole-brain = the MEDI toolbox's MEDI_full_process (PDF, MEDI+0 with "
                        "an R2* CSF mask, SMV 5 mm, MERIT, lambda 1000) with chi on the whole brain mask; "
                        "medi-full-process = MEDI_full_process itself (chi on the mask eroded by 5 mm); plain = PDF + "
                        "MEDI. The options below override the recipe's values (default: whole-brain)")
    p.add_argument("--method", choices=tuple(METHOD_NAMES), default=None,
                   help="dipole inversion: medi, medi0 (MEDI+0, CSF-referenced) or tkd (default: the recipe's)")
    p.add_argument("--unwrap", choices=("laplacian", "path"), default=None,
                   help="phase unwrapping (default: the pipeline's)")
    p.add_argument("--background", choices=("pdf", "vsharp"), default=None,
                   help="background field removal (default: the pipeline's)")
    p.add_argument("--lambda", dest="lambda_", type=check_lambda, default=None, metavar="auto|N",
                   help="MEDI regularisation weight on the data term (field in radians per echo spacing): 'auto' "
                        "chooses it from each series' local field "
                        "(lambda x sigma_phi = min(100, 2 (sigma_phi/sigma_noise)^2), "
                        "both estimated from the field; recorded in the sidecar), a number fixes it (default: the "
                        "recipe's, the toolbox's 1000)")
    p.add_argument("--smv-radius", type=float, default=None, metavar="MM",
                   help="MEDI: SMV high-pass of field and kernel with this radius (mm), mask eroded by it "
                        "(the toolbox's 'smv'; 0 = none; default: the recipe's: for whole-brain 5 mm, nested inside "
                        "passes of 30, 20 and 10 mm for the deeper brain where they fit (40 mm too with a compact CSF "
                        "mask); 5 mm for medi-full-process)")
    p.add_argument("--merit", action=argparse.BooleanOptionalAction, default=None,
                   help="MEDI: MERIT reweighting of voxels with large residuals (default: the recipe's)")
    p.add_argument("--b0-tesla", type=float, default=None,
                   help="field strength (T) if the sidecars lack MagneticFieldStrength")
    p.add_argument("--min-echoes", type=int, default=2, help="fewest echoes accepted per series (default 2)")
    p.add_argument("--brain-mask-dir", default=None, metavar="DIR",
                   help="derivative folder with sub-<L>/anat/sub-<L>_desc-brain_mask.nii.gz on the MEGRE grid "
                        "(default: computed from the magnitude by threshold and morphology; it takes in scalp "
                        "below a first-echo SNR of about 20)")
    p.add_argument("--csf-mask-dir", default=None, metavar="DIR",
                   help="derivative folder with sub-<L>/anat/sub-<L>_desc-csf_mask.nii[.gz] on the MEGRE grid: the "
                        "CSF (reference) region of MEDI+0, whose mean chi is the zero (default: CSF from R2* < 5 1/s; "
                        "where there is none, MEDI without a reference, noted in the sidecar). Prefer a mask of all "
                        "the brain's CSF to the ventricles alone: a compact mask holds the low spatial frequencies "
                        "poorly and is flagged)")
    p.add_argument("--no-fields", action="store_true",
                   help="do not write the total/local field maps (fmap/*_desc-{total,local}_fieldmap, Hz)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_qsm)
    return subparsers
