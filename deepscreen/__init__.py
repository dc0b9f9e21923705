"""deepscreen: screen videos for face manipulation (deepfakes) in batch."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

# Screening decodes video (ffmpeg) while the models run, on the same cores. OpenMP threads that busy-wait
# between torch's parallel regions take those cores from the decoder: sleeping instead made scan ~20% faster on
# a 2-core CPU (README, Performance). Read once, when torch loads; a value already set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
__all__ = ["Screener", "ScreenResult", "TrackResult", "__version__"]

if TYPE_CHECKING:
    from .results import ScreenResult, TrackResult
    from .screener import Screener


def __getattr__(name: str):
    """Import the heavy parts (torch, MTCNN) only when used, so `deepscreen --version` stays instant."""
    if name == "Screener":
        from .screener import Screener

        return Screener
    if name in ("ScreenResult", "TrackResult"):
        from . import results

        return getattr(results, name)
    raise AttributeError(name)
