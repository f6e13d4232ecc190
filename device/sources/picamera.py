"""``picamera2://0?width=&height=&fps=&format=``: Raspberry Pi cameras through picamera2 (libcamera).

picamera2 names formats the way libcamera does, by little-endian packed
words, so an ``RGB888`` array holds the bytes B, G, R per pixel and
``XBGR8888`` holds R, G, B, X.  The channel order is fixed here and every
frame's meta says what the sensor format was and that the frame is RGB.
picamera2 is imported only in ``open()``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from leukedge.device.sources.base import LiveSource, RawFrame, UriParams
from leukedge.errors import HardwareUnavailableError, InvalidInputError
from leukedge.extras import require_picamera2

# picamera2 format -> (channel indices that give R, G, B, what the array's bytes are)
FORMATS: Dict[str, Tuple[Tuple[int, int, int], str]] = {
    "RGB888": ((2, 1, 0), "BGR"),
    "BGR888": ((0, 1, 2), "RGB"),
    "XRGB8888": ((2, 1, 0), "BGRX"),
    "XBGR8888": ((0, 1, 2), "RGBX"),
}


class PiCamera(LiveSource):
    kind = "picamera2"

    def __init__(self, uri: str) -> None:
        q = UriParams(uri, ("width", "height", "fps", "format", "reconnect"))
        super().__init__(uri, reconnect_timeout=q.number("reconnect", 60.0, hi=86400.0))
        num = q.netloc or "0"
        if not num.isdigit():
            raise InvalidInputError(f"source {uri}: camera number {num!r}, expected picamera2://0, picamera2://1, …")
        self.camera_num = int(num)
        self.width = q.integer("width", 1920, lo=16, hi=16384)
        self.height = q.integer("height", 1080, lo=16, hi=16384)
        self.fps = q.number("fps", None, lo=0.1, hi=240.0)
        self.format = q.text("format", "RGB888") or "RGB888"
        if self.format not in FORMATS:
            raise InvalidInputError(
                f"source {uri}: format={self.format!r}, expected one of {', '.join(FORMATS)}",
                hint="RGB888 (the default) is what picamera2 delivers fastest for colour analysis",
            )
        self._cam: Any = None

    def _connect(self) -> None:
        module = require_picamera2()
        cameras = module.Picamera2.global_camera_info()
        if len(cameras) <= self.camera_num:
            raise HardwareUnavailableError(
                f"source {self.uri}: camera {self.camera_num} not found ({len(cameras)} camera(s) attached)",
                hint="check the ribbon cable and 'rpicam-hello --list-cameras'; do not enable the legacy camera stack",
            )
        cam = module.Picamera2(self.camera_num)
        try:
            controls: Dict[str, Any] = {}
            if self.fps:
                controls["FrameRate"] = float(self.fps)
            config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": self.format}, controls=controls, buffer_count=2
            )
            cam.configure(config)
            cam.start()
        except Exception as exc:  # libcamera raises RuntimeError and friends for busy or missing cameras
            cam.close()
            raise HardwareUnavailableError(
                f"source {self.uri}: picamera2 could not start camera {self.camera_num} ({exc})",
                hint="another program may hold the camera; close it, or reboot after a camera firmware update",
            ) from exc
        self._cam = cam

    def _disconnect(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None

    def _grab(self) -> Optional[RawFrame]:
        if self._cam is None:
            return None
        try:
            array = self._cam.capture_array("main")
        except Exception:  # a camera unplugged mid-stream: reconnect
            return None
        return to_rgb(array, self.format)


def to_rgb(array: np.ndarray, fmt: str) -> RawFrame:
    """A picamera2 array in format ``fmt`` as H×W×3 RGB, with meta stating the conversion."""
    order, stored = FORMATS[fmt]
    meta = {"channel_order": "RGB", "sensor_format": fmt, "converted_from": stored}
    if array.ndim != 3 or array.shape[2] < 3:
        return array, meta  # the frame check names the unexpected shape
    return np.ascontiguousarray(array[..., list(order)]), meta
