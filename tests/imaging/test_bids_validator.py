"""Every dataset the compendium writes passes the official BIDS validator with no error.

``bids-validator-deno`` (the validator of the BIDS maintainers, pinned in requirements.txt for
the tests) checks the simulated raw dataset (``python -m analysis phantom``), its
``derivatives/truth`` and the QSM derivatives (``python -m analysis qsm``).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.cli import main

VALIDATOR = shutil.which("bids-validator-deno") or str(Path(sys.executable).with_name("bids-validator-deno"))


def validate(path, *extra):
    """Run the validator; return its error issues (a list of dicts)."""
    if not Path(VALIDATOR).is_file():
        pytest.fail("bids-validator-deno is not installed (it is pinned in requirements.txt: run make setup)")
    proc = subprocess.run([VALIDATOR, "--format", "json", *extra, str(path)], capture_output=True, text=True,
                          timeout=300)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"validator output is not JSON (exit {proc.returncode}): {proc.stdout[:500]} {proc.stderr[:500]}")
    issues = report["issues"]["issues"]
    return [i for i in issues if i.get("severity") == "error"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("bv") / "ds"
    assert main(["phantom", str(root), "--resolution", "4", "--seed", "3", "--subject", "01"]) == 0
    assert main(["phantom", str(root), "--resolution", "4", "--seed", "4", "--subject", "02", "--session", "pre",
                 "--phase-units", "arbitrary"]) == 0
    assert main(["qsm", str(root), str(root / "derivatives" / "qsm"), "--method", "tkd", "--no-progress"]) == 0
    return root


def _summary(errors):
    return [(e["code"], e.get("location"), e.get("subCode")) for e in errors]


def test_simulated_raw_dataset_is_valid(dataset):
    assert not _summary(validate(dataset))


def test_truth_derivatives_are_valid(dataset):
    assert not _summary(validate(dataset / "derivatives" / "truth"))


def test_qsm_derivatives_are_valid(dataset):
    qsm = dataset / "derivatives" / "qsm"
    assert (qsm / "sub-01/anat/sub-01_Chimap.nii.gz").is_file()
    assert (qsm / "sub-02/ses-pre/fmap/sub-02_ses-pre_desc-local_fieldmap.nii.gz").is_file()
    assert not _summary(validate(qsm))
