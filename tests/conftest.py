import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only reference data beside the checkout; tests skip when it is absent."""
    d = SHARED / "data"
    if not d.is_dir():
        pytest.skip(f"reference data not found at {d} (only present beside a CI/dev checkout)")
    return d


@pytest.fixture(autouse=True)
def _single_thread_torch():
    import torch

    torch.set_num_threads(int(os.environ.get("AUTOSPEC_TEST_THREADS", "1")))
    yield
