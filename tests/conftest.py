"""Shared test fixtures.

Real price files live in ``../shared/data`` beside the checkout (override with
``FACTORARB_SHARED_DATA``). They are test data, never copied into the
repository; tests that need them skip with a reason when the folder is absent.
"""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_path():
    """Folder of the real price files, or None when it is not there."""
    env = os.environ.get("FACTORARB_SHARED_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data_dir():
    path = shared_data_path()
    if path is None:
        pytest.skip(
            "real price data not found: expected ../shared/data beside the "
            "checkout or FACTORARB_SHARED_DATA pointing to it"
        )
    return path
