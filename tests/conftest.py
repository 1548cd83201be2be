"""Session-wide fixtures: the bundled (simulated) cohort and head phantoms, built once per run.

Phantoms take seconds to build; the cohort is read and validated once. Tests must not modify what
these fixtures return (``cohort`` hands out a copy; phantoms are shared).
"""

import pytest

from analysis.cohort.dictionary import load_cohort
from analysis.simulation.phantom import make_head_phantom


@pytest.fixture(scope="session")
def bundled_cohort():
    """``data/cohort.csv`` (SIMULATED), validated."""
    return load_cohort()


@pytest.fixture
def cohort(bundled_cohort):
    """A copy of the bundled cohort that a test may change."""
    return bundled_cohort.copy()


@pytest.fixture(scope="session")
def head_phantom():
    """``head_phantom(resolution_mm, seed, **options)``: a simple (piecewise-constant) head phantom,
    built once per argument set for the whole session."""
    cache = {}

    def get(resolution_mm=2.0, seed=0, **options):
        key = (float(resolution_mm), int(seed), tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = make_head_phantom(resolution_mm=resolution_mm, seed=seed, **options)
        return cache[key]

    return get
