"""The model manifest: the contract between training, conversion and every runtime.

A manifest is JSON under a versioned schema (``SCHEMA``).  Training writes
the preprocessing, class and decision sections; conversion adds files,
calibration and parity; runtimes read all of it and never take these values
from anywhere else.  Loading validates every field and names the field, the
value found and the value expected in the error.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from leukedge.errors import ManifestError

SCHEMA = "leukedge.bundle/1"
POSITIVE_CLASS = "all"
KNOWN_CLASSES = ("hem", "all")
# The softmax order every leukedge-trained model has (the trainer encodes a cell as 1 when it is
# ALL).  A bundle whose provenance does not record its training order was trained with this one.
TRAINED_CLASSES = ("hem", "all")
# Largest Gaussian kernel the CPU reference and the CUDA kernel are tested with; a kernel
# larger than the model input is a mistake, and a huge one costs minutes and gigabytes.
MAX_GAUSSIAN_KSIZE = 31
MAX_CANVAS_PX = 8192

BORDER_MODES = ("reflect101", "reflect", "replicate", "constant")
INTERPOLATIONS = ("area", "linear", "cubic", "nearest")
LOG_APPLY_AT = ("input", "source")
LOG_COMBINE = ("sharpen",)
LAPLACIAN_APERTURES = (1, 3)
CROP_MODES = ("canvas", "cell_box")


@dataclass(frozen=True)
class LogSpec:
    """Laplacian-of-Gaussian enhancement, exactly.

    ``G = GaussianBlur(I, ksize, sigma)`` then ``L = Laplacian(G, aperture)``
    in float32 with ``border`` at both steps, then ``out = clip(I - alpha·L, 0, 255)``.
    Aperture 1 is the 4-neighbour kernel [[0,1,0],[1,-4,1],[0,1,0]]; aperture 3
    is OpenCV's diagonal kernel [[2,0,2],[0,-8,0],[2,0,2]].  ``apply_at`` says
    whether this runs on the model input (after resizing) or on the crop at
    source resolution (before resizing): the same kernel is a different filter
    at the two scales.
    """

    enabled: bool = True
    apply_at: str = "input"
    gaussian_ksize: int = 5
    gaussian_sigma: float = 1.0
    laplacian_aperture: int = 3
    border: str = "reflect101"
    combine: str = "sharpen"
    alpha: float = 0.25


@dataclass(frozen=True)
class CropSpec:
    """How a cell becomes a model input: the cell, masked outside its outline, centred on black.

    ``mode`` "canvas" (bundles before the size-normalised recipe): a square of
    ``canvas_px`` source pixels (C-NMC: 450), so the cell's size shows in the
    input.  ``mode`` "cell_box": a square of the cell's own box side times
    ``1 + 2·margin``, so every cell fills the input alike and its chromatin is
    kept at the highest resolution; absolute size is then not in the image.
    Both are resized to the model input.  A C-NMC image and a cell segmented
    from a frame go through the same function (``leukedge.segment.crop_for``).
    ``source_scale`` is the frame's µm-per-pixel divided by the training
    data's; 1.0 means the same magnification.
    """

    canvas_px: int = 450
    source_scale: float = 1.0
    mode: str = "canvas"
    margin: float = 0.1


@dataclass(frozen=True)
class Preprocessing:
    input_height: int = 128
    input_width: int = 128
    channel_order: str = "RGB"
    layout: str = "NHWC"
    interpolation: str = "area"
    scale: float = 1.0 / 255.0  # model input = pixel * scale + offset
    offset: float = 0.0
    log: LogSpec = field(default_factory=LogSpec)
    crop: CropSpec = field(default_factory=CropSpec)


@dataclass(frozen=True)
class Decision:
    """The label rule: ``p_all >= threshold`` is ALL.

    ``indeterminate`` is a band [low, high) around the threshold that reports
    count separately.  ``policy`` says how the threshold was chosen.
    """

    threshold: float = 0.5
    policy: str = "fixed"
    indeterminate: tuple[float, float] = (0.4, 0.6)


@dataclass(frozen=True)
class ModelFile:
    path: str
    sha256: str


@dataclass(frozen=True)
class Manifest:
    name: str = "leukedge-vgg13"
    architecture: str = "vgg13"
    classes: tuple[str, ...] = ("hem", "all")  # softmax output order
    input_name: str = "input"
    output_name: str = "predictions"
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    decision: Decision = field(default_factory=Decision)
    files: dict[str, ModelFile] = field(default_factory=dict)  # "onnx_fp32", "onnx_int8", "keras"
    provenance: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    @property
    def positive_index(self) -> int:
        return self.classes.index(POSITIVE_CLASS)

    def label_for(self, p_all: float) -> str:
        other = next(c for c in self.classes if c != POSITIVE_CLASS)
        return POSITIVE_CLASS if p_all >= self.decision.threshold else other

    def decision_fields(self) -> dict[str, Any]:
        """The fields that decide which label a cell gets: they are part of the model id."""
        d = self.to_dict()
        return {
            "classes": d["classes"],
            "input_name": d["input_name"],
            "output_name": d["output_name"],
            "preprocessing": d["preprocessing"],
            # every decision field but the prose of 'policy', so a field added later is covered too
            "decision": {k: v for k, v in d["decision"].items() if k != "policy"},
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["decision"]["indeterminate"] = list(self.decision.indeterminate)
        return {"schema": d.pop("schema"), **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, d: Any, *, where: str = "manifest.json") -> Manifest:
        return _parse_manifest(d, where)

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ManifestError(
                f"{p}: no manifest here", field="", hint="point at a bundle folder made by 'leukedge convert'"
            ) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{p}: not valid JSON ({exc})", field="") from exc
        return cls.from_dict(data, where=str(p))


# --- validation -----------------------------------------------------------


class _Reader:
    """Reads typed fields from a dict, naming the dotted field path in every error."""

    def __init__(self, data: Any, path: str, where: str) -> None:
        if not isinstance(data, dict):
            raise ManifestError(
                f"{where}: field '{path or '<root>'}' is {_show(data)}, expected an object",
                field=path,
            )
        self.data = data
        self.path = path
        self.where = where

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, value: Any, expected: str) -> ManifestError:
        name = self._name(key)
        return ManifestError(
            f"{self.where}: field '{name}' is {_show(value)}, expected {expected}",
            field=name,
            hint="re-create the bundle with 'leukedge convert', or fix the field by hand",
        )

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., *, expected: str = "") -> Any:
        if key not in self.data:
            if default is ...:
                raise self.fail(key, "missing", expected or _kind_name(kind))
            return default
        value = self.data[key]
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            raise self.fail(key, value, expected or _kind_name(kind))
        if not isinstance(value, kind):
            raise self.fail(key, value, expected or _kind_name(kind))
        return value

    def number(self, key: str, default: Any = ..., *, lo: float | None = None, hi: float | None = None) -> float:
        """A finite number in [lo, hi]; NaN and infinities are refused for every numeric field."""
        raw = self.get(key, (int, float), default)
        v = float(raw) if _is_finite_number(raw) else math.nan
        if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise self.fail(key, self.data.get(key, v), _range_text("a finite number", lo, hi))
        return v

    def integer(self, key: str, default: Any = ..., *, lo: int, hi: int, odd: bool = False) -> int:
        """An integer in [lo, hi] (and odd when asked)."""
        v = self.get(key, int, default)
        if not lo <= v <= hi or (odd and v % 2 == 0):
            raise self.fail(key, v, _range_text("an odd integer" if odd else "an integer", lo, hi))
        return int(v)

    def choice(self, key: str, options: tuple[Any, ...], default: Any = ...) -> Any:
        v = self.get(key, object, default)
        if v not in options:
            raise self.fail(key, v, "one of " + ", ".join(repr(o) for o in options))
        return v

    def sub(self, key: str, required: bool = False) -> _Reader:
        if key not in self.data and not required:
            return _Reader({}, self._name(key), self.where)
        return _Reader(self.get(key, dict), self._name(key), self.where)


def _is_finite_number(v: Any) -> bool:
    """A JSON number that is a finite float (an int too large for a float is not)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _range_text(kind: str, lo: float | None, hi: float | None) -> str:
    if lo is None and hi is None:
        return kind
    if hi is None:
        return f"{kind} >= {lo}"
    if lo is None:
        return f"{kind} <= {hi}"
    return f"{kind} in [{lo}, {hi}]"


def _show(v: Any) -> str:
    if isinstance(v, str) and v == "missing":
        return "missing"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # json.dumps would print NaN/Infinity, which is not JSON either
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 10**30:
        return f"an integer of {len(str(abs(v)))} digits"
    s = json.dumps(v) if isinstance(v, (str, int, float, bool, type(None), list)) else type(v).__name__
    return s if len(s) <= 60 else s[:57] + "..."


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {
        int: "an integer",
        float: "a number",
        str: "a string",
        bool: "true or false",
        dict: "an object",
        list: "a list",
    }
    if isinstance(kind, tuple):
        return "a number" if set(kind) == {int, float} else " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def _parse_log(r: _Reader) -> LogSpec:
    d = LogSpec()
    return LogSpec(
        enabled=r.get("enabled", bool, d.enabled),
        apply_at=r.choice("apply_at", LOG_APPLY_AT, d.apply_at),
        gaussian_ksize=r.integer("gaussian_ksize", d.gaussian_ksize, lo=1, hi=MAX_GAUSSIAN_KSIZE, odd=True),
        gaussian_sigma=r.number("gaussian_sigma", d.gaussian_sigma, lo=0.0, hi=50.0),
        laplacian_aperture=r.choice("laplacian_aperture", LAPLACIAN_APERTURES, d.laplacian_aperture),
        border=r.choice("border", BORDER_MODES, d.border),
        combine=r.choice("combine", LOG_COMBINE, d.combine),
        alpha=r.number("alpha", d.alpha, lo=0.0, hi=10.0),
    )


def _parse_preprocessing(r: _Reader) -> Preprocessing:
    d = Preprocessing()
    size = (
        r.integer("input_height", d.input_height, lo=16, hi=1024),
        r.integer("input_width", d.input_width, lo=16, hi=1024),
    )
    crop = r.sub("crop")
    canvas = crop.integer("canvas_px", CropSpec.canvas_px, lo=16, hi=MAX_CANVAS_PX)
    return Preprocessing(
        input_height=size[0],
        input_width=size[1],
        channel_order=r.choice("channel_order", ("RGB", "BGR"), d.channel_order),
        layout=r.choice("layout", ("NHWC", "NCHW"), d.layout),
        interpolation=r.choice("interpolation", INTERPOLATIONS, d.interpolation),
        scale=r.number("scale", d.scale, lo=1e-9, hi=1e3),
        offset=r.number("offset", d.offset, lo=-1e3, hi=1e3),
        log=_parse_log(r.sub("log")),
        crop=CropSpec(
            canvas_px=canvas,
            source_scale=crop.number("source_scale", CropSpec.source_scale, lo=0.01, hi=100.0),
            mode=crop.choice("mode", CROP_MODES, CropSpec.mode),
            margin=crop.number("margin", CropSpec.margin, lo=0.0, hi=1.0),
        ),
    )


def _parse_decision(r: _Reader) -> Decision:
    d = Decision()
    thr = r.number("threshold", d.threshold, lo=0.0, hi=1.0)
    band = r.get("indeterminate", list, list(d.indeterminate))
    if len(band) != 2 or not all(_is_finite_number(b) for b in band) or not (0.0 <= band[0] <= thr <= band[1] <= 1.0):
        raise r.fail("indeterminate", band, f"[low, high] with 0 <= low <= threshold ({thr}) <= high <= 1")
    return Decision(
        threshold=thr, policy=r.get("policy", str, d.policy), indeterminate=(float(band[0]), float(band[1]))
    )


def _parse_files(r: _Reader) -> dict[str, ModelFile]:
    files = {}
    for key in r.data:
        fr = r.sub(key, required=True)
        sha = fr.get("sha256", str)
        if len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha):
            raise fr.fail("sha256", sha, "64 lower-case hex digits")
        files[key] = ModelFile(path=fr.get("path", str), sha256=sha)
    return files


def _parse_manifest(data: Any, where: str) -> Manifest:
    r = _Reader(data, "", where)
    schema = r.get("schema", str, expected=f"{SCHEMA!r}")
    if schema != SCHEMA:
        raise ManifestError(
            f"{where}: field 'schema' is {schema!r}, expected {SCHEMA!r}",
            field="schema",
            hint="this bundle was written by another leukedge version; re-convert it with this one",
        )
    provenance = r.get("provenance", dict, {})
    classes = _parse_classes(r, provenance)
    return Manifest(
        schema=schema,
        name=r.get("name", str, Manifest.name),
        architecture=r.get("architecture", str, Manifest.architecture),
        classes=classes,
        input_name=_tensor_name(r, "input_name", Manifest.input_name),
        output_name=_tensor_name(r, "output_name", Manifest.output_name),
        preprocessing=_parse_preprocessing(r.sub("preprocessing")),
        decision=_parse_decision(r.sub("decision")),
        files=_parse_files(r.sub("files")),
        provenance=provenance,
        calibration=r.get("calibration", dict, {}),
        parity=r.get("parity", dict, {}),
        metrics=r.get("metrics", dict, {}),
    )


def _tensor_name(r: _Reader, key: str, default: str) -> str:
    name = r.get(key, str, default)
    if not name.strip():
        raise r.fail(key, name, "the name of the model's tensor (not empty)")
    return str(name)


def trained_classes(provenance: dict[str, Any]) -> tuple[str, ...] | None:
    """The softmax order the model was trained with, as its provenance records it (None: not recorded)."""
    training = provenance.get("training")
    recorded = training.get("classes") if isinstance(training, dict) else None
    if isinstance(recorded, list) and all(isinstance(c, str) for c in recorded):
        return tuple(recorded)
    return None


def _parse_classes(r: _Reader, provenance: dict[str, Any]) -> tuple[str, ...]:
    """Two distinct known class names, in the order the model was trained with.

    The order maps the model's outputs to labels, so a swapped list silently
    inverts every label.  The order training used is recorded in
    ``provenance.training.classes`` (and, for ONNX files, in the model's own
    metadata, checked when a runtime loads it); a model that records none
    was trained by leukedge with :data:`TRAINED_CLASSES`.
    """
    value = r.get("classes", list, list(Manifest.classes))
    expected = f"two distinct names from {list(KNOWN_CLASSES)}"
    if len(value) != 2 or not all(isinstance(c, str) and c in KNOWN_CLASSES for c in value) or len(set(value)) != 2:
        raise r.fail("classes", value, expected)
    trained = trained_classes(provenance) or TRAINED_CLASSES
    if tuple(value) != trained:
        raise ManifestError(
            f"{r.where}: field 'classes' is {json.dumps(value)}, but the model was trained with the output "
            f"order {json.dumps(list(trained))}; a different order would invert every label",
            field="classes",
            hint="restore 'classes' to the order the model was trained with",
        )
    return tuple(value)
