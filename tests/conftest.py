"""Shared test setup: deterministic torch, and a test-only torchaudio stand-in for the ltx-core oracle.

ltx-core 1.0.0 imports torchaudio in its audio modules; PyPI's torchaudio does not load beside a CPU torch 2.13,
so when the real one is missing the oracle sees a pure-torch stand-in (tests/_torchaudio_standin.py).
"""

import pytest
import torch

from ._torchaudio_standin import install_if_missing

install_if_missing()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield
