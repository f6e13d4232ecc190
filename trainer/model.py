"""The paper's customised VGG13, beside the preprocessing it is trained with.

Ten 3×3 convolutions in five blocks (blocks 1–4: two convolutions with ReLU
and 2×2 max-pooling; block 5: two convolutions and 2×2 *average* pooling),
flatten, two ReLU dense layers and a softmax over the manifest's classes, on
128×128×3 NHWC float32 inputs.

Layer names are stable (``block1_conv1`` … ``block5_pool``, ``flatten``,
``fc1``, ``fc2``, ``predictions``; input ``input``) because they become ONNX
node names, TensorRT layer names and INT8 settings downstream.

``width`` scales every convolution's channel count (VGG's 64-128-256-512-512);
``dense`` sets the two dense layers.  ``batch_norm`` inserts BatchNormalization
between each convolution and its ReLU (``block1_bn1`` …); it folds into the
convolution at conversion.  Moving averages lag the weights: with few epochs
a model can then predict one class for everything at inference while its
training loss looks fine.  So training re-measures the statistics after every
epoch (``fit.recalibrate_batch_norm``), and the momentum is 0.9, not
Keras' 0.99.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from leukedge.manifest import CropSpec, LogSpec, Preprocessing

VGG_CHANNELS = (64, 128, 256, 512, 512)
CLASSES = ("hem", "all")  # softmax order; the manifest's default
BN_MOMENTUM = 0.9


@dataclass(frozen=True)
class ModelConfig:
    """Everything ``build_vgg13`` needs; stored in the model's provenance."""

    width: float = 0.25
    dense: tuple[int, int] = (256, 256)
    batch_norm: bool = False
    dropout: float = 0.5

    def channels(self) -> tuple[int, ...]:
        return tuple(max(4, round(c * self.width)) for c in VGG_CHANNELS)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dense"] = list(self.dense)
        d["channels"] = list(self.channels())
        return d


def make_preprocessing(
    *,
    size: int = 128,
    log_enabled: bool = True,
    log_ksize: int = LogSpec.gaussian_ksize,
    log_sigma: float = LogSpec.gaussian_sigma,
    log_aperture: int = LogSpec.laplacian_aperture,
    log_alpha: float = LogSpec.alpha,
    log_apply_at: str = LogSpec.apply_at,
    crop_mode: str = CropSpec.mode,
    crop_margin: float = CropSpec.margin,
) -> Preprocessing:
    """The manifest's preprocessing section for a model trained with these LoG settings.

    Validated through the manifest parser, so training accepts exactly what a
    manifest may hold; a bad value is reported under its command-line name.
    """
    from leukedge.errors import InvalidInputError, ManifestError
    from leukedge.manifest import Manifest

    log = LogSpec(
        enabled=log_enabled,
        apply_at=log_apply_at,
        gaussian_ksize=log_ksize,
        gaussian_sigma=float(log_sigma),
        laplacian_aperture=log_aperture,
        alpha=float(log_alpha),
    )
    crop = CropSpec(mode=crop_mode, margin=float(crop_margin))
    spec = Preprocessing(input_height=size, input_width=size, log=log, crop=crop)
    try:
        checked = Manifest.from_dict(Manifest(preprocessing=spec).to_dict(), where="training options")
    except ManifestError as exc:
        option = _OPTION_NAMES.get(exc.field.rsplit(".", 1)[-1], exc.field)
        raise InvalidInputError(
            exc.message.replace(f"field '{exc.field}'", option), hint="see 'leukedge train --help'"
        ) from exc
    return checked.preprocessing


_OPTION_NAMES = {
    "gaussian_ksize": "--log-ksize",
    "gaussian_sigma": "--log-sigma",
    "laplacian_aperture": "--log-aperture",
    "alpha": "--log-alpha",
    "apply_at": "--log-apply-at",
    "mode": "--crop",
    "margin": "--crop-margin",
    "input_height": "input size",
    "input_width": "input size",
}


def build_vgg13(
    config: ModelConfig | None = None,
    *,
    input_shape: tuple[int, int, int] = (128, 128, 3),
    classes: tuple[str, ...] = CLASSES,
) -> Any:
    """A fresh, uncompiled Keras VGG13 (see the module docstring for the layout)."""
    import keras
    from keras import layers

    cfg = config or ModelConfig()
    inputs = keras.Input(shape=input_shape, name="input", dtype="float32")
    x = inputs
    for b, ch in enumerate(cfg.channels(), start=1):
        for c in (1, 2):
            if cfg.batch_norm:
                x = layers.Conv2D(ch, 3, padding="same", use_bias=False, name=f"block{b}_conv{c}")(x)
                x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{b}_bn{c}")(x)
                x = layers.ReLU(name=f"block{b}_relu{c}")(x)
            else:
                x = layers.Conv2D(
                    ch, 3, padding="same", activation="relu", kernel_initializer="he_normal", name=f"block{b}_conv{c}"
                )(x)
        pool = layers.AveragePooling2D if b == 5 else layers.MaxPooling2D
        x = pool(2, name=f"block{b}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    for k, units in enumerate(cfg.dense, start=1):
        x = layers.Dense(units, activation="relu", kernel_initializer="he_normal", name=f"fc{k}")(x)
        if cfg.dropout > 0:
            x = layers.Dropout(cfg.dropout, name=f"fc{k}_dropout")(x)
    outputs = layers.Dense(len(classes), activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="vgg13")


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one forward pass (convolutions and dense layers; batch 1)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            total += int(h) * int(w) * int(cout) * kh * kw * int(cin)
        elif isinstance(layer, keras.layers.Dense):
            total += int(layer.input.shape[-1]) * int(layer.units)
    return total


def describe(model: Any) -> dict[str, int]:
    """Parameter count and MACs, for the variant table."""
    return {"params": int(model.count_params()), "macs": count_macs(model)}
