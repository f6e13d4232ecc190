"""Frame sources, chosen by URI scheme or file suffix from one registry.

=============================================  ==========================================
``synthetic://?seed=&fps=&cells=&width=&height=&frames=``  drawn smear frames (tests, demo, benchmarks)
``picamera2://0?width=&height=&fps=``          Raspberry Pi camera (picamera2)
``csi://0?width=&height=&fps=``                Jetson CSI camera (GStreamer nvarguscamerasrc)
``v4l2:///dev/video0?width=&height=&fps=``     USB microscope camera (also a bare ``/dev/videoN``)
``rtsp://host/path``                           network stream
``clip.mp4`` (any suffix in VIDEO_SUFFIXES)    video file
``folder/``, ``'slides/*.png'``, ``one.png``   image folder (recursive), glob, or one image
``push``                                       frames handed in by ``Screener.submit``
=============================================  ==========================================

Every class is a context manager and touches no device before ``open()``.
``register_scheme`` / ``register_suffix`` add sources without editing this file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Union
from urllib.parse import urlsplit

from leukedge.device.sources.base import Frame, FrameSource, LiveSource, check_frame
from leukedge.device.sources.cameras import CsiCamera, RtspStream, V4l2Camera
from leukedge.device.sources.files import VIDEO_SUFFIXES, ImageFilesSource, VideoFileSource
from leukedge.device.sources.picamera import PiCamera
from leukedge.device.sources.push import PushSource
from leukedge.device.sources.synthetic import SyntheticSource
from leukedge.errors import InvalidInputError
from leukedge.images import IMAGE_SUFFIXES

SourceFactory = Callable[[str], FrameSource]

SCHEMES: Dict[str, SourceFactory] = {
    "synthetic": SyntheticSource,
    "picamera2": PiCamera,
    "csi": CsiCamera,
    "v4l2": V4l2Camera,
    "rtsp": RtspStream,
    "rtsps": RtspStream,
    "push": PushSource,
}
SUFFIXES: Dict[str, SourceFactory] = {
    **{s: VideoFileSource for s in VIDEO_SUFFIXES},
    **{s: ImageFilesSource for s in IMAGE_SUFFIXES},
}


def register_scheme(scheme: str, factory: SourceFactory) -> None:
    SCHEMES[scheme] = factory


def register_suffix(suffix: str, factory: SourceFactory) -> None:
    SUFFIXES[suffix.lower()] = factory


def make_source(spec: Union[str, os.PathLike[str], FrameSource, None]) -> FrameSource:
    """An unopened source for a URI, a path, an existing source (returned as is), or None (push)."""
    if isinstance(spec, FrameSource):
        return spec
    if spec is None:
        return PushSource()
    uri = os.fspath(spec)
    if uri in ("push", "push://"):
        return PushSource()
    scheme = urlsplit(uri).scheme
    if scheme and scheme != "file" and len(scheme) > 1:  # len 1: a Windows drive letter
        factory = SCHEMES.get(scheme)
        if factory is None:
            raise InvalidInputError(
                f"--source {uri}: unknown scheme '{scheme}://', expected one of "
                + ", ".join(f"{s}://" for s in SCHEMES if s != "push")
                + ", a video file or an image folder",
                hint="for example --source synthetic:// or --source v4l2:///dev/video0",
            )
        return factory(uri)
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    if path.startswith("/dev/video"):
        return V4l2Camera("v4l2://" + path)
    if any(ch in path for ch in "*?["):
        return ImageFilesSource(uri)
    p = Path(path)
    if p.is_dir():
        return ImageFilesSource(uri)
    factory = SUFFIXES.get(p.suffix.lower())
    if factory is not None:
        if not p.exists():
            raise InvalidInputError(f"--source {uri}: no such file")
        return factory(uri)
    if not p.exists():
        raise InvalidInputError(
            f"--source {uri}: no such file or folder, and not a source URI",
            hint="use a folder, a glob, a video file, or a URI such as synthetic://, csi://0, v4l2:///dev/video0",
        )
    raise InvalidInputError(
        f"--source {uri}: files of type '{p.suffix}' are not a known source; expected a video "
        f"({', '.join(VIDEO_SUFFIXES)}) or an image ({', '.join(IMAGE_SUFFIXES)})",
    )


__all__ = [
    "SCHEMES",
    "SUFFIXES",
    "CsiCamera",
    "Frame",
    "FrameSource",
    "ImageFilesSource",
    "LiveSource",
    "PiCamera",
    "PushSource",
    "RtspStream",
    "SyntheticSource",
    "V4l2Camera",
    "VideoFileSource",
    "check_frame",
    "make_source",
    "register_scheme",
    "register_suffix",
]
