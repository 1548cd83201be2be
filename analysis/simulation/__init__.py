"""Everything simulated, with known truth: the head phantom, its acquisition, the cohort.

- :mod:`~analysis.simulation.phantom`: numerical head phantom from FreeSurfer's template labels
  (literature susceptibilities, veins, lesions);
- :mod:`~analysis.simulation.acquisition`: multi-echo GRE simulation of a phantom;
- :mod:`~analysis.simulation.bids_dataset`: the simulated acquisition and its truth as BIDS;
- :mod:`~analysis.simulation.anatomy`: what FreeSurfer would derive from the phantom (synthetic
  T1/FLAIR, cortical parcels, white surface, the stats numbers);
- :mod:`~analysis.simulation.freesurfer_subject`: the phantom as a FreeSurfer-like subject
  directory;
- :mod:`~analysis.simulation.phantom_qsm`: the phantom as a QSM subject (images, simulated
  reconstruction, truth, ROI scores);
- :mod:`~analysis.simulation.imaging_cohort`: one phantom per cohort row -> QSM -> ROI ->
  measured cohort;
- :mod:`~analysis.simulation.calibration`: the synthetic cohort calibrated to the paper's
  printed numbers.

The real-data path (:mod:`analysis.imaging`, :mod:`analysis.cohort`) never imports this package.
"""

__all__: list[str] = []
