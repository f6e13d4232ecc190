"""Sources that read from disk: image folders, globs or single images, and video files.

They lose no frame: the pipeline waits for them instead of dropping.  The
end of the files ends the run.  Image files are decoded only by
:func:`leukedge.images.read_image` (one decoder everywhere); an unreadable
image is skipped, logged and listed in ``skipped``.  Video files are decoded
by OpenCV (FFmpeg), whose BGR frames are turned into RGB here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

from leukedge.device.sources.base import FrameSource, RawFrame, log
from leukedge.errors import InvalidImageError, InvalidInputError
from leukedge.images import IMAGE_SUFFIXES, iter_image_files, read_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".h264", ".mjpeg")


class ImageFilesSource(FrameSource):
    """An image folder (recursive), a glob, or one image file; frames in sorted path order.

    Each frame's ``source`` is its file, so results name the image they came from.
    """

    kind = "images"

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.path = uri[len("file://") :] if uri.startswith("file://") else uri
        self.files: List[Path] = []
        self._next = 0

    def _open(self) -> None:
        try:
            files = iter_image_files([self.path])
        except InvalidImageError as exc:
            raise InvalidInputError(f"source {self.uri}: {exc.message}", hint=exc.hint) from exc
        self.files = [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES]
        if not self.files:
            raise InvalidInputError(
                f"source {self.uri}: no image files found (looked for {', '.join(IMAGE_SUFFIXES)})",
                hint="point --source at a folder of smear images, a glob such as 'slides/*.png', or a video file",
            )
        self._next = 0

    def _read(self) -> Optional[RawFrame]:
        while self._next < len(self.files):
            path = self.files[self._next]
            self._next += 1
            try:
                image = read_image(path)
            except InvalidImageError as exc:
                self.skipped.append((str(path), exc.message))
                log.warning("skipped %s", exc.message)
                continue
            return image, {"source": str(path), "file": str(path)}
        return None

    def __len__(self) -> int:
        return len(self.files)


class VideoFileSource(FrameSource):
    """A video file decoded by OpenCV; every frame, in order, then the end of the run."""

    kind = "video"

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
        self._cap: Any = None

    def _open(self) -> None:
        import cv2

        if not self.path.is_file():
            raise InvalidInputError(f"source {self.uri}: no such video file")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise InvalidInputError(
                f"source {self.uri}: OpenCV {cv2.__version__} cannot decode this video "
                f"(FFmpeg support: {opencv_flag('FFMPEG')})",
                hint="re-encode it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or extract frames to a folder",
            )
        self._cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def _read(self) -> Optional[RawFrame]:
        import cv2

        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None  # end of file: the run ends cleanly
        pos_ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))  # after read(): the decoded frame's time stamp
        if bgr.ndim != 3 or bgr.shape[2] != 3:
            return bgr, {"pos_ms": round(pos_ms, 3)}  # check_frame names the wrong shape
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), {"pos_ms": round(pos_ms, 3), "decoded_from": "BGR"}

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def opencv_flag(name: str) -> str:
    """``YES``/``NO`` for a feature in cv2.getBuildInformation() (GStreamer, FFMPEG, V4L/V4L2)."""
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith(name + ":"):
            return line.split(":", 1)[1].strip().split()[0]
    return "unknown"
