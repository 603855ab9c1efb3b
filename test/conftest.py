"""Shared fixtures: the reference data in test/data and a seeded DiffusionDrive built once per session."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "test" / "data"
"""Facts taken from the official implementation (see test/data/README.md), so tests run from a plain clone."""

sys.path.insert(0, str(REPO / "test" / "support"))


def parity_case_path() -> Path:
    """The parity case: test/data, or another case file named by DDROS_PARITY_CASE."""
    return Path(os.environ.get("DDROS_PARITY_CASE", DATA / "parity_case_a.npz"))


@pytest.fixture(scope="session")
def parity_case():
    path = parity_case_path()
    if not path.is_file():
        pytest.fail(f"parity case {path} not found (DDROS_PARITY_CASE)")
    with np.load(path) as case:
        return {k: case[k] for k in case.files}


@pytest.fixture(scope="session")
def parity_model(parity_case):
    """DiffusionDrive with the reference weight rule for the case's seed and anchors, in eval mode."""
    import torch

    from diffusiondrive_ros.model import DiffusionDrive
    from diffusiondrive_ros.model.weights import seeded_state_dict

    model = DiffusionDrive().eval()
    anchors = torch.from_numpy(parity_case["plan_anchor"])
    model.load_state_dict(seeded_state_dict(model, int(parity_case["weight_seed"]), anchors), strict=True)
    return model
