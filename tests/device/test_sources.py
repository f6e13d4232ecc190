"""Frame sources: the registry, files, folders, video, synthetic, push, and cameras through fakes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
from PIL import Image

from leukedge.device.sources import (
    CsiCamera,
    ImageFilesSource,
    PiCamera,
    PushSource,
    RtspStream,
    SyntheticSource,
    V4l2Camera,
    VideoFileSource,
    make_source,
)
from leukedge.device.sources.cameras import OpenCvCamera
from leukedge.device.sources.files import opencv_flag
from leukedge.errors import HardwareUnavailableError, InvalidImageError, InvalidInputError
from leukedge.images import as_rgb8
from tests.device.gpu_fakes import fake_spec


def _write(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


# -- registry -----------------------------------------------------------------------------


def test_registry_picks_the_source_by_scheme_and_suffix(tmp_path) -> None:
    _write(tmp_path / "a.png", np.zeros((16, 16, 3), np.uint8))
    (tmp_path / "clip.mp4").write_bytes(b"x")
    assert isinstance(make_source("synthetic://?seed=3"), SyntheticSource)
    assert isinstance(make_source("picamera2://0"), PiCamera)
    assert isinstance(make_source("csi://0"), CsiCamera)
    assert isinstance(make_source("v4l2:///dev/video0"), V4l2Camera)
    assert make_source("/dev/video2").device == "/dev/video2"  # type: ignore[attr-defined]
    assert isinstance(make_source("rtsp://cam.local/stream?x=1"), RtspStream)
    assert isinstance(make_source(tmp_path), ImageFilesSource)
    assert isinstance(make_source(str(tmp_path / "*.png")), ImageFilesSource)
    assert isinstance(make_source(tmp_path / "a.png"), ImageFilesSource)
    assert isinstance(make_source(tmp_path / "clip.mp4"), VideoFileSource)
    assert isinstance(make_source(None), PushSource) and isinstance(make_source("push"), PushSource)


def test_nothing_is_opened_by_construction() -> None:
    cam = make_source("v4l2:///dev/video99")  # no such device: constructing must not notice
    assert cam.live and cam.frames == 0
    with pytest.raises(InvalidInputError, match="before open"):
        cam.read()


@pytest.mark.parametrize(
    ("uri", "match"),
    [
        ("webcam://0", "unknown scheme 'webcam://'"),
        ("no/such/folder", "no such file or folder"),
        ("synthetic://?fps=fast", "parameter fps='fast', expected a number"),
        ("synthetic://?colour=red", "unknown parameter"),
        ("synthetic://?width=10", r"parameter width='10'"),
        ("csi://left", "sensor id"),
        ("v4l2:///dev/video0?fourcc=H2", "fourcc"),
        ("picamera2://0?format=YUV420", "format='YUV420'"),
    ],
)
def test_bad_source_uris_are_clear_errors(uri, match) -> None:
    with pytest.raises(InvalidInputError, match=match):
        make_source(uri)


def test_a_file_of_unknown_type_is_refused(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InvalidInputError, match="'.txt' are not a known source"):
        make_source(tmp_path / "notes.txt")


# -- files --------------------------------------------------------------------------------


def test_image_folder_is_sorted_lossless_and_tags_each_frame_with_its_file(tmp_path, rng) -> None:
    for name in ("b.png", "a.png", "sub/c.jpg"):
        _write(tmp_path / name, rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    (tmp_path / "readme.txt").write_text("not an image")
    with make_source(tmp_path) as src:
        frames = list(src)
    assert [Path(f.source).name for f in frames] == ["a.png", "b.png", "c.jpg"]
    assert [f.index for f in frames] == [0, 1, 2]
    assert not src.live
    for f in frames:
        assert f.meta["file"] == f.source and f.meta["channel_order"] == "RGB"
        assert f.image.dtype == np.uint8 and f.image.shape == (20, 30, 3)
        assert f.t_capture == pytest.approx(time.time(), abs=60)


def test_image_folder_skips_unreadable_files_and_says_which(tmp_path, rng) -> None:
    _write(tmp_path / "good.png", rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    with make_source(tmp_path) as src:
        frames = list(src)
    assert [Path(f.source).name for f in frames] == ["good.png"]
    assert len(src.skipped) == 1 and "broken.png" in src.skipped[0][0]


def test_empty_folder_is_an_error_at_open(tmp_path) -> None:
    src = make_source(tmp_path)
    with pytest.raises(InvalidInputError, match="no image files found"):
        src.open()


def test_real_smear_frames_folder(smear_dir) -> None:
    with make_source(smear_dir / "JPEGImages") as src:
        first = src.read()
    assert first is not None and first.image.shape == (480, 640, 3)
    assert Path(first.source).name == sorted(p.name for p in (smear_dir / "JPEGImages").glob("*.jpg"))[0]


def _write_video(path: Path, frames: list) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (w, h))
    assert writer.isOpened(), "OpenCV cannot write MJPG/AVI here"
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.mark.skipif(opencv_flag("FFMPEG") != "YES", reason="this OpenCV has no FFmpeg")
def test_video_file_every_frame_in_rgb_then_a_clean_end(tmp_path) -> None:
    red = np.zeros((48, 64, 3), np.uint8)
    red[..., 0] = 220  # pure red in RGB: a BGR mix-up would show as blue
    video = _write_video(tmp_path / "clip.avi", [red] * 5)
    with make_source(video) as src:
        frames = list(src)
        assert src.read() is None  # stays ended
    assert len(frames) == 5
    px = frames[2].image[24, 32].astype(int)
    assert px[0] > 180 and px[2] < 60, f"expected red in RGB order, got {px}"
    assert frames[1].meta["pos_ms"] > frames[0].meta["pos_ms"]


def test_a_file_that_is_not_a_video_says_so(tmp_path) -> None:
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(InvalidInputError, match="cannot decode this video"):
        make_source(bad).open()


# -- synthetic ----------------------------------------------------------------------------


def test_synthetic_frames_are_rgb_uint8_with_truth_counts_and_end_after_frames() -> None:
    with make_source("synthetic://?width=640&height=480&cells=2&frames=3&pool=2&seed=5") as src:
        frames = list(src)
    assert len(frames) == 3 and not src.live
    assert all(as_rgb8(f.image) is not None and f.image.shape == (480, 640, 3) for f in frames)
    assert frames[0].meta["drawn"] == 2 and frames[2].meta["pool_index"] == 0
    np.testing.assert_array_equal(frames[0].image, frames[2].image)  # the pool cycles
    assert not np.shares_memory(frames[0].image, frames[2].image)  # each frame is its own copy


def test_synthetic_with_fps_is_live_and_paced() -> None:
    with make_source("synthetic://?width=320&height=320&cells=1&pool=1&fps=20&frames=5") as src:
        t0 = time.perf_counter()
        frames = list(src)
        took = time.perf_counter() - t0
    assert src.live and len(frames) == 5
    assert took >= 0.18  # 5 frames at 20 fps: the last is due 0.2 s after the first
    assert frames[-1].t_capture - frames[0].t_capture == pytest.approx(0.2, abs=0.1)


# -- push ------------------------------------------------------------------------------------


def test_push_source_checks_frames_in_the_callers_thread() -> None:
    src = PushSource()
    src.open()
    with pytest.raises(InvalidImageError, match=r"shape \(64, 64\)"):
        src.submit(np.zeros((64, 64), np.uint8))
    with pytest.raises(InvalidImageError, match="float32"):
        src.submit(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(InvalidImageError, match="too small"):
        src.submit(np.zeros((4, 4, 3), np.uint8))


def test_push_source_drops_the_oldest_when_full_and_numbers_frames_as_submitted() -> None:
    src = PushSource(capacity=2)
    src.open()
    for k in range(5):
        assert src.submit(np.full((16, 16, 3), k, np.uint8), meta={"k": k}) == k
    src.end()
    got = list(src)
    assert [f.index for f in got] == [3, 4] and [f.meta["k"] for f in got] == [3, 4]
    assert src.dropped == 3 and src.stats()["dropped_at_submit"] == 3
    with pytest.raises(InvalidInputError, match="after end"):
        src.submit(np.zeros((16, 16, 3), np.uint8))


def test_blocking_push_source_loses_nothing() -> None:
    src = PushSource(block=True, capacity=1)
    src.open()
    assert not src.live

    def producer() -> None:
        for k in range(6):
            src.submit(np.full((16, 16, 3), k, np.uint8))
        src.end()

    t = threading.Thread(target=producer)
    t.start()
    got = [int(f.image[0, 0, 0]) for f in src]
    t.join(5)
    assert got == list(range(6))


# -- cameras through fakes ----------------------------------------------------------------


class FakeCapture:
    """A cv2.VideoCapture stand-in: plays a script of frames, None meaning 'the device stopped'."""

    script: ClassVar[list] = []
    opened_with: ClassVar[list] = []
    fail_opens = 0

    def __init__(self, target, api) -> None:
        type(self).opened_with.append((target, api))
        self._open = type(self).fail_opens <= 0
        type(self).fail_opens -= 1
        self.props: dict = {}

    def isOpened(self) -> bool:
        return self._open

    def set(self, prop, value) -> bool:
        self.props[prop] = value
        return True

    def read(self):
        if not type(self).script:
            return False, None
        item = type(self).script.pop(0)
        return (False, None) if item is None else (True, item)

    def release(self) -> None:
        self._open = False


@pytest.fixture
def fake_cv(monkeypatch):
    FakeCapture.script, FakeCapture.opened_with, FakeCapture.fail_opens = [], [], 0
    monkeypatch.setattr(OpenCvCamera, "capture_factory", FakeCapture)
    monkeypatch.setattr(OpenCvCamera, "backoff", (0.01, 0.02))
    return FakeCapture


def _bgr(value: int) -> np.ndarray:
    img = np.zeros((24, 32, 3), np.uint8)
    img[..., 0] = value  # blue channel in OpenCV's BGR
    return img


def test_v4l2_camera_converts_bgr_to_rgb_and_applies_settings(fake_cv) -> None:
    fake_cv.script = [_bgr(200)]
    with make_source("v4l2:///dev/video3?width=1280&height=720&fps=15&fourcc=MJPG") as cam:
        frame = cam.read()
    assert frame is not None and frame.image[0, 0].tolist() == [0, 0, 200]
    assert frame.meta["decoded_from"] == "BGR" and frame.meta["channel_order"] == "RGB"
    assert fake_cv.opened_with[0] == ("/dev/video3", cv2.CAP_V4L2)


def test_camera_that_drops_out_is_reopened_and_the_gap_reported(fake_cv) -> None:
    fake_cv.script = [_bgr(1), None, _bgr(3)]  # frame, disconnect, frame after reconnect
    fake_cv.fail_opens = 0
    with make_source("v4l2:///dev/video0") as cam:
        first, second = cam.read(), cam.read()
        stats = cam.stats()
    assert first is not None and second is not None
    assert "gap_s" not in first.meta and second.meta["gap_s"] >= 0.0
    assert stats["reconnects"] == 1 and len(fake_cv.opened_with) == 2


def test_camera_that_stays_away_fails_after_the_reconnect_timeout(fake_cv) -> None:
    fake_cv.script = [_bgr(1)]
    with make_source("v4l2:///dev/video0?reconnect=0.2") as cam:
        assert cam.read() is not None
        fake_cv.fail_opens = 1000
        with pytest.raises(HardwareUnavailableError, match="not back after"):
            cam.read()


def test_missing_v4l2_device_is_a_clear_error_at_open() -> None:
    cam = make_source("v4l2:///dev/video97")
    with pytest.raises(HardwareUnavailableError, match="no such device /dev/video97") as err:
        cam.open()
    assert "v4l2-ctl" in (err.value.hint or "")


def test_csi_without_gstreamer_names_the_opencv_that_was_loaded(monkeypatch) -> None:
    monkeypatch.setattr("leukedge.device.sources.cameras.opencv_flag", lambda name: "NO")
    cam = make_source("csi://0?width=1280&height=720&fps=60")
    assert "nvarguscamerasrc sensor-id=0" in cam.pipeline() and "framerate=(fraction)60/1" in cam.pipeline()  # type: ignore[attr-defined]
    with pytest.raises(HardwareUnavailableError, match="built without GStreamer") as err:
        cam.open()
    assert cv2.__version__ in err.value.message and "JetPack" in (err.value.hint or "")


# -- picamera2 through a fake module ------------------------------------------------------


class FakePicamera2:
    cameras: ClassVar[list] = [{"Model": "imx477"}]
    instances: ClassVar[list] = []

    def __init__(self, num) -> None:
        self.num = num
        self.config = None
        self.started = False
        FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info():
        return FakePicamera2.cameras

    def create_video_configuration(self, main, controls, buffer_count):
        return {"main": main, "controls": controls}

    def configure(self, config) -> None:
        self.config = config

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        pass

    def capture_array(self, name="main"):
        w, h = self.config["main"]["size"]
        arr = np.zeros((h, w, 3), np.uint8)
        arr[..., 0], arr[..., 1], arr[..., 2] = 10, 20, 30  # RGB888 is B, G, R in memory
        return arr


@pytest.fixture
def fake_picamera2(monkeypatch):
    import types

    module = fake_spec(types.ModuleType("picamera2"))
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "picamera2", module)
    FakePicamera2.cameras, FakePicamera2.instances = [{"Model": "imx477"}], []
    return FakePicamera2


def test_picamera2_frames_come_out_rgb_with_the_conversion_stated(fake_picamera2) -> None:
    with make_source("picamera2://0?width=640&height=480&fps=10") as cam:
        frame = cam.read()
        config = fake_picamera2.instances[0].config
    assert frame is not None and frame.image.shape == (480, 640, 3)
    assert frame.image[0, 0].tolist() == [30, 20, 10]  # R, G, B
    assert frame.meta == {"channel_order": "RGB", "sensor_format": "RGB888", "converted_from": "BGR"}
    assert config["main"] == {"size": (640, 480), "format": "RGB888"} and config["controls"]["FrameRate"] == 10.0
    assert not fake_picamera2.instances[0].started  # closed on exit


def test_picamera2_xbgr_format_keeps_rgb_and_drops_padding(fake_picamera2, monkeypatch) -> None:
    def rgbx(self, name="main"):
        arr = np.zeros((16, 16, 4), np.uint8)
        arr[..., 0], arr[..., 1], arr[..., 2], arr[..., 3] = 30, 20, 10, 255
        return arr

    monkeypatch.setattr(FakePicamera2, "capture_array", rgbx)
    with make_source("picamera2://0?format=XBGR8888&width=16&height=16") as cam:
        frame = cam.read()
    assert frame is not None and frame.image[0, 0].tolist() == [30, 20, 10]


def test_picamera2_without_a_camera_says_how_to_check(fake_picamera2) -> None:
    fake_picamera2.cameras = []
    with pytest.raises(HardwareUnavailableError, match="camera 0 not found") as err:
        make_source("picamera2://0").open()
    assert "legacy camera" in (err.value.hint or "")


def test_picamera2_is_not_imported_before_open(monkeypatch) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    make_source("picamera2://1?width=320&height=240")
    assert "picamera2" not in sys.modules
