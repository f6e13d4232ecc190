"""leukedge: screen blood smears for acute lymphoblastic leukemia on edge devices.

Importing this package loads only the standard library, numpy and OpenCV.
``Screener`` (the real-time SDK) is imported from ``leukedge.device`` on
first use, and hardware libraries only when a device is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from leukedge._version import __version__
from leukedge.bundle import Bundle
from leukedge.errors import (
    BundleError,
    GateFailedError,
    HardwareUnavailableError,
    InvalidImageError,
    InvalidInputError,
    LeukedgeError,
    ManifestError,
    MissingDependencyError,
    OutputError,
    run_main,
)
from leukedge.manifest import Manifest
from leukedge.types import BBox, Cell, FrameResult

if TYPE_CHECKING:
    from leukedge.device.screener import Screener

__all__ = [
    "BBox",
    "Bundle",
    "BundleError",
    "Cell",
    "FrameResult",
    "GateFailedError",
    "HardwareUnavailableError",
    "InvalidImageError",
    "InvalidInputError",
    "LeukedgeError",
    "Manifest",
    "ManifestError",
    "MissingDependencyError",
    "OutputError",
    "Screener",
    "__version__",
    "run_main",
]


def __getattr__(name: str) -> Any:
    if name == "Screener":
        from leukedge.device.screener import Screener

        return Screener
    raise AttributeError(f"module 'leukedge' has no attribute {name!r}")
