"""The cohort table, where every stage meets: one row per patient.

- :mod:`analysis.cohort.dictionary`: the data dictionary, validation (:func:`load_cohort`) and
  descriptive statistics;
- :mod:`analysis.cohort.subject`: one subject's imaging row (:func:`measure_subject`, the single
  place where χ map + segmentation + FreeSurfer + lesion mask become cohort columns) and the merge
  with a clinical table;
- :mod:`analysis.cohort.measure`: a whole QSM derivative dataset -> the cohort CSV (what
  ``python -m analysis measure`` runs).

The statistics (:mod:`analysis.stats`) see only this table.
"""

from analysis.cohort.dictionary import (
                                        COLUMN_NAMES,
                                        COLUMNS,
                                        DEFAULT_COHORT_CSV,
                                        DEFAULT_SEED,
                                        data_dictionary,
                                        describe_cohort,
                                        load_cohort,
                                        validate_cohort,
)
from analysis.cohort.subject import (
                                        CLINICAL_COLUMNS,
                                        COHORT_COLUMNS,
                                        IMAGING_COLUMNS,
                                        measure_subject,
                                        merge_clinical,
                                        subject_row,
)

__all__ = ["COLUMNS", "COLUMN_NAMES", "DEFAULT_COHORT_CSV", "DEFAULT_SEED", "data_dictionary", "describe_cohort",
           "load_cohort", "validate_cohort", "IMAGING_COLUMNS", "CLINICAL_COLUMNS", "COHORT_COLUMNS",
           "measure_subject", "merge_clinical", "subject_row"]
