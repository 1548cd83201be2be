"""``python -m analysis phantom OUT_BIDS_DIR``: the simulated head phantom's MEGRE as a BIDS dataset.

Thin over :func:`analysis.simulation.acquisition.simulate_bids_subject`; the truth goes to
``OUT_BIDS_DIR/derivatives/truth``.
"""

from __future__ import annotations

from analysis.cli._common import setup_logging
from analysis.simulation.acquisition import simulate_bids_subject

__all__ = ["add_parser"]


def _cmd_phantom(args):
    setup_logging()
    snr = None if args.snr <= 0 else args.snr
    _, _, files = simulate_bids_subject(args.out_dir, subject=args.subject, session=args.session,
                                        resolution_mm=args.resolution, snr=snr, seed=args.seed,
                                        phase_units=args.phase_units, write_truth=not args.no_truth,
                                        overwrite=args.overwrite,
                                        realism="realistic" if args.realistic else "simple",
                                        thalamus_scale=args.thalamus_scale, thalamus_chi_ppm=args.thalamus_chi,
                                        lesion_volume_ml=args.lesion_volume, n_lesions=args.n_lesions)
    print(f"wrote {len(files)} files under {args.out_dir}")


def add_parser(subparsers):
    """Register ``phantom`` on an argparse ``subparsers`` object."""
    p = subparsers.add_parser("phantom", help="simulate the head phantom's MEGRE acquisition as a BIDS dataset")
    p.add_argument("out_dir", help="BIDS dataset to write (created if needed)")
    p.add_argument("--subject", default="01", help="participant label (default 01)")
    p.add_argument("--session", default=None, help="session label (default: none)")
    p.add_argument("--resolution", type=float, default=2.0, help="voxel size in mm (default 2; 1 for the full phantom)")
    p.add_argument("--snr", type=float, default=100.0, help="first-echo SNR in the brain (default 100; 0 = noise-free)")
    p.add_argument("--seed", type=int, default=0, help="random seed (lesions, phase offset, noise)")
    p.add_argument("--thalamus-scale", type=float, default=1.0, help="thalamic volume factor (default 1)")
    p.add_argument("--thalamus-chi", type=float, default=0.04,
                   help="thalamic susceptibility in ppm vs CSF (default 0.04)")
    p.add_argument("--lesion-volume", type=float, default=5.0, help="total T2 lesion volume in mL (default 5)")
    p.add_argument("--n-lesions", type=int, default=6, help="number of lesions (default 6)")
    p.add_argument("--phase-units", choices=("rad", "deg", "arbitrary"), default="rad",
                   help="store phase in radians or degrees (float) or as 12-bit integers 0..4095 (default rad)")
    p.add_argument("--realistic", action="store_true",
                   help="realistic phantom: chi varying inside structures (texture, iron gradients), thin veins, "
                        "field and signal simulated on a 2x finer grid and averaged into the voxels (no inverse crime)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing subject of that label (default: refuse to write over it)")
    p.add_argument("--no-truth", action="store_true", help="do not write derivatives/truth")
    p.set_defaults(func=_cmd_phantom)
    return subparsers
