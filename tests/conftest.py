"""Shared fixtures: quiet TensorFlow, and the real MNIST subset when the machine has it."""

import os
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
