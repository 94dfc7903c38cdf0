"""Test-only stand-in for the two torchaudio entry points ltx-core 1.0.0 touches at import time.

Only used when ``import torchaudio`` fails. Calling the stand-ins raises, so a test that silently relied on them
cannot pass by accident; the audio tests provide their own independent mel reference.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types


def _unavailable(*args: object, **kwargs: object) -> None:
    raise RuntimeError("torchaudio is a test stand-in here; this code path needs a real implementation.")


def install_if_missing() -> bool:
    """Registers the stand-in when torchaudio cannot be imported; returns whether it did."""
    try:
        import torchaudio  # noqa: F401

        return False
    except Exception:
        for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
            del sys.modules[name]
    root = types.ModuleType("torchaudio")
    root.transforms = types.ModuleType("torchaudio.transforms")
    root.functional = types.ModuleType("torchaudio.functional")
    root.transforms.MelSpectrogram = _unavailable
    root.functional.resample = _unavailable
    root.__version__ = "0.0-test-standin"
    for module, name in ((root, "torchaudio"), (root.transforms, "torchaudio.transforms"),
                         (root.functional, "torchaudio.functional")):
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        sys.modules[name] = module
    return True
