"""The code is lint-clean: ``ruff check .`` passes with the configuration in pyproject.toml.

ruff is pinned in requirements.txt (test-only), so it is run as ``python -m ruff`` of the running
environment; a missing ruff is a failure, not a skip.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"`ruff check .` failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
