"""deepscreen: screen videos for face manipulation (deepfakes) in batch."""
from __future__ import annotations

from typing import TYPE_CHECKING

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
