"""Real data in, numbers out: the imaging stage (never imports :mod:`analysis.simulation` or :mod:`analysis.cli`).

Data flow, one module per step::

    bids.py          find and read multi-echo GRE (MEGRE) series and sidecars; write QSM derivatives
    qsm/             field fit, unwrapping, brain mask, background removal, dipole inversion (MEDI, TKD),
                     recipes (the one home of the reconstruction settings), the whole pipeline
    reconstruct.py   a BIDS dataset -> QSM derivatives (what ``python -m analysis qsm`` runs)
    freesurfer.py    FreeSurfer 5.1-7 stats and segmentations
    labels.py        every aseg label id and name
    roi.py           thalamic VOI, vein exclusion, atrial CSF reference, lesion volume
    roi_tables.py    the ROI measurements of several χ maps / both hemispheres as tables
    metrics.py       accuracy of a χ map against a known truth
    figures.py, qsm_figures.py   the imaging figures
"""
