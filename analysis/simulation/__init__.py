"""Everything simulated, with known truth: the head phantom, its acquisition, the cohort.

- :mod:`~analysis.simulation.phantom`: numerical head phantom from FreeSurfer's template labels
  (literature susceptibilities, veins, lesions);
- :mod:`~analysis.simulation.acquisition`: multi-echo GRE simulation of a phantom;
- :mod:`~analysis.simulation.bids_dataset`: the simulated acquisition and its truth as BIDS;
- :mod:`~analysis.simulation.phantom_subject`: the phantom as a FreeSurfer subject directory,
  synthetic T1/FLAIR, reconstruction and scoring against the truth;
- :mod:`~analysis.simulation.imaging_cohort`: one phantom per cohort row -> QSM -> ROI ->
  measured cohort;
- :mod:`~analysis.simulation.calibration`: the synthetic cohort calibrated to the paper's
  printed numbers.

The real-data path (:mod:`analysis.imaging`, :mod:`analysis.cohort`) never imports this package.
"""
