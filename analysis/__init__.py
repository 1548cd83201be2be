"""Thalamic QSM in relapsing-remitting multiple sclerosis: a reproducible research compendium.

Reproduces Hu et al./Gauthier et al., "Quantitative Susceptibility Mapping of the Thalamus:
Relationships with Thalamic Volume, Total Gray Matter Volume, and T2 Lesion Burden",
AJNR Am J Neuroradiol 2018;39:467-72.

The patients' data were never published. Everything this package computes by default runs on
**simulated** data: a synthetic cohort calibrated to the paper's printed summaries
(:mod:`analysis.cohort.dictionary`) and numerical head phantoms with known ground truth.

One module per stage of the data flow::

    BIDS MEGRE -> field -> local field -> chi map -> (with aseg) ROI values -> cohort table
    -> models -> tables and figures
"""

__version__ = "0.1.0"
