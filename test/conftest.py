"""Shared fixtures: the reference fixtures folder and a seeded DiffusionDrive built once per session."""
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REFERENCE = REPO.parent / "shared" / "reference"


def parity_case_path() -> Path:
    return Path(os.environ.get("DDROS_PARITY_CASE", SHARED_REFERENCE / "parity_case_a.npz"))


@pytest.fixture(scope="session")
def parity_case():
    path = parity_case_path()
    if not path.is_file():
        pytest.fail(f"parity case {path} not found: put ../shared beside the repo or set DDROS_PARITY_CASE")
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
