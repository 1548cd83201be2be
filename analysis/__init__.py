"""Thalamic QSM in relapsing-remitting multiple sclerosis: a reproducible research compendium.

Reproduces "Quantitative Susceptibility Mapping of the Thalamus: Relationships with Thalamic
Volume, Total Gray Matter Volume, and T2 Lesion Burden", AJNR Am J Neuroradiol 2018;39(3):467-72.

The patients' data were never published. Everything this package computes by default runs on
**simulated** data: a synthetic cohort calibrated to the paper's printed summaries
(:mod:`analysis.cohort.dictionary`) and numerical head phantoms with known ground truth.

One subpackage per stage of the data flow (``docs/architecture.md``)::

    BIDS MEGRE -> field -> chi map        analysis.imaging.qsm
    chi map + segmentation -> ROI values  analysis.imaging (roi, freesurfer, bids)
    ROI values + clinical -> cohort table analysis.cohort
    cohort table -> models                analysis.stats
    models -> tables and figures          notebooks/ (run by analysis.reproduce)

    analysis.simulation  simulated inputs (phantoms, acquisitions, the synthetic cohort)
    analysis.cli         ``python -m analysis ...`` (the library never imports it)

Installed as the distribution ``thalamic-qsm-compendium``; :data:`__version__` is its version.
"""

from analysis._version import DIST_NAME as DIST_NAME  # re-exported: analysis.DIST_NAME
from analysis._version import get_version

__version__ = get_version()
