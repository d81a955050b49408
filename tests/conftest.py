"""Shared fixtures: quiet TensorFlow, the real MNIST subset when the machine has it, the fuzz case report."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]


def shared_datasets() -> Path | None:
    """``$KERAS_AE_DATA`` or ``../shared/datasets`` beside the repository, if present."""
    for candidate in (os.environ.get("KERAS_AE_DATA"), REPO.parent / "shared" / "datasets"):
        if candidate and Path(candidate, "mnist-small").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def mnist_small() -> Path:
    """Folder of the real 7,000 + 1,000 MNIST digits (IDX); the test is skipped without it."""
    root = shared_datasets()
    if root is None:
        pytest.skip("../shared/datasets/mnist-small is not on this machine")
    return root / "mnist-small"


def pytest_terminal_summary(terminalreporter):
    """How many cases each fuzz property of tests/test_fuzz.py ran, and how they ended (when it ran)."""
    counts = getattr(sys.modules.get("test_fuzz"), "COUNTS", None)
    if not counts:
        return
    terminalreporter.section("fuzz cases run")
    for test, kinds in sorted(counts.items()):
        terminalreporter.write_line(f"{test:<24} {sum(kinds.values()):>5} cases  "
                                    + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    terminalreporter.write_line(f"total {sum(sum(kinds.values()) for kinds in counts.values())}")
