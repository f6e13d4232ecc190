from __future__ import annotations

import pytest

from leukedge.errors import InvalidInputError
from leukedge.trainer.model import ModelConfig, build_vgg13, count_macs, describe, make_preprocessing

CONV_NAMES = [f"block{b}_conv{c}" for b in range(1, 6) for c in (1, 2)]


def test_vgg13_layout_and_stable_names() -> None:
    model = build_vgg13(ModelConfig(width=0.125, dense=(64, 32)))
    names = [layer.name for layer in model.layers]
    assert names[0] == "input"
    for n in [*CONV_NAMES, *(f"block{b}_pool" for b in range(1, 6)), "flatten", "fc1", "fc2", "predictions"]:
        assert n in names, n
    assert sum(type(layer).__name__ == "Conv2D" for layer in model.layers) == 10  # the paper's 10 convolutions
    assert type(model.get_layer("block5_pool")).__name__ == "AveragePooling2D"
    assert all(type(model.get_layer(f"block{b}_pool")).__name__ == "MaxPooling2D" for b in range(1, 5))
    assert model.input.shape[1:] == (128, 128, 3)
    assert model.output.shape[1:] == (2,)
    assert model.get_layer("predictions").get_config()["activation"] == "softmax"
    assert [model.get_layer(f"block{b}_conv1").filters for b in range(1, 6)] == [8, 16, 32, 64, 64]
    assert model.get_layer("fc1").units == 64 and model.get_layer("fc2").units == 32
    assert model.get_layer("flatten").output.shape[1:] == (4 * 4 * 64,)


def test_macs_and_params_follow_width() -> None:
    small, big = build_vgg13(ModelConfig(width=0.125)), build_vgg13(ModelConfig(width=0.25))
    # first conv: 128·128 outputs × 8 channels × 3·3·3 inputs
    assert count_macs(small) > 128 * 128 * 8 * 27
    ratio = count_macs(big) / count_macs(small)
    assert 3.0 < ratio < 4.1  # convolutions scale with width²
    d = describe(big)
    assert d["params"] == big.count_params() and d["macs"] == count_macs(big)


def test_batch_norm_variant_keeps_conv_names() -> None:
    model = build_vgg13(ModelConfig(width=0.0625, batch_norm=True))
    names = [layer.name for layer in model.layers]
    assert all(n in names for n in CONV_NAMES)
    assert "block1_bn1" in names and "block5_relu2" in names
    bn = model.get_layer("block1_bn1")
    assert bn.momentum == pytest.approx(0.9)
    assert not model.get_layer("block1_conv1").use_bias  # the BN's beta takes the bias's place


def test_layers_are_all_loadable_classes() -> None:
    from leukedge.trainer.modelio import ALLOWED_LAYERS

    for cfg in (ModelConfig(width=0.0625), ModelConfig(width=0.0625, batch_norm=True)):
        assert {type(layer).__name__ for layer in build_vgg13(cfg).layers} <= ALLOWED_LAYERS


def test_preprocessing_options_are_validated() -> None:
    spec = make_preprocessing(log_ksize=7, log_sigma=1.5, log_aperture=1, log_alpha=0.5, log_apply_at="source")
    assert (spec.log.gaussian_ksize, spec.log.laplacian_aperture, spec.log.apply_at) == (7, 1, "source")
    with pytest.raises(InvalidInputError, match="--log-ksize is 4, expected an odd integer"):
        make_preprocessing(log_ksize=4)
    with pytest.raises(InvalidInputError, match="--log-alpha"):
        make_preprocessing(log_alpha=-1.0)
