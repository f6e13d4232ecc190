"""Cameras and streams through OpenCV: ``v4l2://`` (USB microscope cameras), ``csi://`` (Jetson), ``rtsp://``.

OpenCV delivers BGR; frames leave here as RGB.  ``csi://`` needs an OpenCV
built with GStreamer (the one JetPack ships); PyPI's opencv-python wheels
are built without it, and the error says which OpenCV was loaded.
"""

from __future__ import annotations

import glob
import os
from typing import Any, Callable, Optional, Tuple

from leukedge.device.sources.base import LiveSource, RawFrame, UriParams
from leukedge.device.sources.files import opencv_flag
from leukedge.errors import HardwareUnavailableError, InvalidInputError

LIVE_PARAMS = ("width", "height", "fps", "reconnect")


class OpenCvCamera(LiveSource):
    """A cv2.VideoCapture that is reopened when it stops delivering frames.

    ``capture_factory`` (default ``cv2.VideoCapture``) is the seam tests use
    to put a fake device behind the reconnect logic.
    """

    capture_factory: Optional[Callable[..., Any]] = None

    def __init__(self, uri: str, *, reconnect_timeout: float = 60.0) -> None:
        super().__init__(uri, reconnect_timeout=reconnect_timeout)
        self._cap: Any = None

    def _target(self) -> Tuple[Any, int]:
        """What to hand to VideoCapture: (filename/pipeline/index, API preference)."""
        raise NotImplementedError

    def _why_not(self) -> str:
        return "OpenCV could not open it"

    def _configure(self, cap: Any) -> None:
        """Set resolution/frame rate after opening."""

    def _connect(self) -> None:
        import cv2

        target, api = self._target()
        factory = self.capture_factory or cv2.VideoCapture
        cap = factory(target, api)
        if not cap.isOpened():
            cap.release()
            raise HardwareUnavailableError(f"source {self.uri}: {self._why_not()}", hint=self._hint())
        self._configure(cap)
        self._cap = cap

    def _hint(self) -> str:
        return "check that the device is connected and not used by another program ('leukedge doctor' lists what works)"

    def _disconnect(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _grab(self) -> Optional[RawFrame]:
        import cv2

        if self._cap is None:
            return None
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        if bgr.ndim == 3 and bgr.shape[2] == 3:
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), {"decoded_from": "BGR"}
        return bgr, {}  # the frame check names the unexpected shape


class V4l2Camera(OpenCvCamera):
    """``v4l2:///dev/video0?width=&height=&fps=&fourcc=MJPG`` (or ``v4l2://0``)."""

    kind = "v4l2"

    def __init__(self, uri: str) -> None:
        q = UriParams(uri, (*LIVE_PARAMS, "fourcc"))
        super().__init__(uri, reconnect_timeout=q.number("reconnect", 60.0, hi=86400.0))
        self.device = q.path or "/dev/video" + (q.netloc or "0")
        if q.netloc and not q.path:
            if not q.netloc.isdigit():
                raise InvalidInputError(f"source {uri}: expected v4l2:///dev/videoN or v4l2://N")
            self.device = "/dev/video" + q.netloc
        self.width = q.integer("width", None, lo=16, hi=16384)
        self.height = q.integer("height", None, lo=16, hi=16384)
        self.fps = q.number("fps", None, lo=0.1, hi=1000.0)
        self.fourcc = q.text("fourcc", None)
        if self.fourcc is not None and len(self.fourcc) != 4:
            raise InvalidInputError(f"source {uri}: fourcc={self.fourcc!r}, expected 4 characters such as MJPG")

    def _target(self) -> Tuple[Any, int]:
        import cv2

        return self.device, cv2.CAP_V4L2

    def _why_not(self) -> str:
        if not os.path.exists(self.device):
            found = sorted(glob.glob("/dev/video*"))
            return f"no such device {self.device} (video devices here: {', '.join(found) or 'none'})"
        if not os.access(self.device, os.R_OK | os.W_OK):
            return f"permission denied on {self.device}"
        return f"OpenCV {_cv_version()} could not open {self.device} (V4L2 support: {opencv_flag('V4L/V4L2')})"

    def _hint(self) -> str:
        if os.path.exists(self.device) and not os.access(self.device, os.R_OK | os.W_OK):
            return "add your user to the 'video' group: sudo usermod -aG video $USER (then log in again)"
        return "plug the camera in and check 'v4l2-ctl --list-devices'; another program may hold it"

    def _configure(self, cap: Any) -> None:
        import cv2

        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.fourcc))
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer stale frames queued inside the driver


class RtspStream(OpenCvCamera):
    """``rtsp://[user:pass@]host[:port]/path`` through OpenCV's FFmpeg backend; the URI is passed on unchanged."""

    kind = "rtsp"

    def __init__(self, uri: str) -> None:
        super().__init__(uri)

    def _target(self) -> Tuple[Any, int]:
        import cv2

        return self.uri, cv2.CAP_FFMPEG

    def _why_not(self) -> str:
        return f"OpenCV {_cv_version()} could not open the stream (FFmpeg support: {opencv_flag('FFMPEG')})"

    def _hint(self) -> str:
        return "check the address and credentials with 'ffplay URI'; set OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp behind NAT"


class CsiCamera(OpenCvCamera):
    """``csi://0?width=1920&height=1080&fps=30&flip=0``: a Jetson CSI camera via GStreamer nvarguscamerasrc."""

    kind = "csi"

    def __init__(self, uri: str) -> None:
        q = UriParams(uri, (*LIVE_PARAMS, "flip"))
        super().__init__(uri, reconnect_timeout=q.number("reconnect", 60.0, hi=86400.0))
        sensor = q.netloc or "0"
        if not sensor.isdigit():
            raise InvalidInputError(f"source {uri}: sensor id {sensor!r}, expected csi://0, csi://1, …")
        self.sensor_id = int(sensor)
        self.width = q.integer("width", 1920, lo=16, hi=16384)
        self.height = q.integer("height", 1080, lo=16, hi=16384)
        self.fps = q.integer("fps", 30, lo=1, hi=240)
        self.flip = q.integer("flip", 0, hi=7)

    def pipeline(self) -> str:
        """The GStreamer pipeline: NVMM NV12 from the ISP, converted to BGR for OpenCV's appsink."""
        return (
            f"nvarguscamerasrc sensor-id={self.sensor_id} ! "
            f"video/x-raw(memory:NVMM), width=(int){self.width}, height=(int){self.height}, "
            f"framerate=(fraction){self.fps}/1, format=(string)NV12 ! "
            f"nvvidconv flip-method={self.flip} ! video/x-raw, format=(string)BGRx ! "
            "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false"
        )

    def _connect(self) -> None:
        if self.capture_factory is None and opencv_flag("GStreamer") != "YES":
            raise HardwareUnavailableError(
                f"source {self.uri}: this OpenCV ({_cv_version()} from {_cv_location()}) was built without "
                "GStreamer, which csi:// cameras need (nvarguscamerasrc)",
                hint="use the OpenCV that JetPack ships: pip uninstall opencv-python opencv-python-headless, "
                "then python3 -c 'import cv2' should load /usr/lib/python3/dist-packages/cv2",
            )
        super()._connect()

    def _target(self) -> Tuple[Any, int]:
        import cv2

        return self.pipeline(), cv2.CAP_GSTREAMER

    def _why_not(self) -> str:
        return f"GStreamer could not start the camera pipeline: {self.pipeline()}"

    def _hint(self) -> str:
        return "check the camera with: gst-launch-1.0 nvarguscamerasrc num-buffers=30 ! fakesink; sudo systemctl restart nvargus-daemon"


def _cv_version() -> str:
    import cv2

    return str(cv2.__version__)


def _cv_location() -> str:
    import cv2

    return os.path.dirname(str(cv2.__file__))
