"""The recipe's command-line options, shared by ``leukedge train`` and ``leukedge cv``.

One decorator declares them and one function turns them into ``TrainOptions``
and the manifest's ``Preprocessing``, so the CV judges exactly the recipe
``train`` then runs.
"""

from __future__ import annotations

from typing import Any, Callable

import click

from leukedge.manifest import CROP_MODES, LOG_APPLY_AT, CropSpec, LogSpec

_OPTIONS = [
    click.option("--epochs", default=60, show_default=True, help="Most epochs to train."),
    click.option("--batch-size", default=32, show_default=True),
    click.option("--lr", "learning_rate", default=1e-3, show_default=True, help="Adam learning rate."),
    click.option(
        "--schedule", type=click.Choice(["constant", "cosine"]), default="constant", show_default=True,
        help="Learning-rate schedule after warm-up.",
    ),
    click.option("--warmup", "warmup_epochs", default=0, show_default=True, help="Epochs of linear LR warm-up."),
    click.option("--label-smoothing", default=0.0, show_default=True),
    click.option("--width", default=0.25, show_default=True, help="Channel multiplier (1.0 = VGG's 64…512)."),
    click.option("--dense", default=256, show_default=True, help="Units of each of the two dense layers."),
    click.option("--dropout", default=0.5, show_default=True, help="Dropout after each dense layer."),
    click.option("--batch-norm/--no-batch-norm", default=False, show_default=True, help="BatchNorm after each conv."),
    click.option(
        "--balance", type=click.Choice(["subject", "class", "none"]), default="class", show_default=True,
        help="subject: half of each epoch per class, subjects weighted by √cells; class: repeat the smaller class.",
    ),
    click.option("--samples-per-epoch", type=int, help="Cells drawn per epoch with --balance subject (default: all)."),
    click.option("--stain", default=0.0, show_default=True, help="Stain jitter strength (hue, saturation, gamma); 0: off."),
    click.option("--seed", default=0, show_default=True, help="Seeds the split, the weights and augmentation."),
    click.option("--size", "input_size", default=128, show_default=True, help="Model input size in pixels."),
    click.option(
        "--crop", "crop_mode", type=click.Choice(CROP_MODES), default=CropSpec.mode, show_default=True,
        help="canvas: the 450 px canvas resized (size visible); cell_box: the cell's own box scaled to the input.",
    ),
    click.option("--crop-margin", default=CropSpec.margin, show_default=True, help="cell_box margin, share of the box side."),
    click.option("--log/--no-log", "log_enabled", default=True, show_default=True, help="LoG sharpening."),
    click.option("--log-ksize", default=LogSpec.gaussian_ksize, show_default=True, help="Gaussian kernel size (odd)."),
    click.option("--log-sigma", default=LogSpec.gaussian_sigma, show_default=True, help="Gaussian sigma."),
    click.option(
        "--log-aperture", type=click.Choice(["1", "3"]), default=str(LogSpec.laplacian_aperture), show_default=True
    ),
    click.option("--log-alpha", default=LogSpec.alpha, show_default=True, help="Sharpening strength."),
    click.option("--log-apply-at", type=click.Choice(LOG_APPLY_AT), default=LogSpec.apply_at, show_default=True),
    click.option("--workers", type=int, help="Parallel image readers (default: automatic)."),
]  # fmt: skip

RECIPE_KEYS = [
    "epochs",
    "batch_size",
    "learning_rate",
    "schedule",
    "warmup_epochs",
    "label_smoothing",
    "width",
    "dense",
    "dropout",
    "batch_norm",
    "balance",
    "samples_per_epoch",
    "stain",
    "seed",
    "input_size",
    "crop_mode",
    "crop_margin",
    "log_enabled",
    "log_ksize",
    "log_sigma",
    "log_aperture",
    "log_alpha",
    "log_apply_at",
    "workers",
]


def recipe_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add every recipe option to a click command."""
    for option in reversed(_OPTIONS):
        f = option(f)
    return f


def build_recipe(values: dict[str, Any], *, patience: int, decision: Any = None) -> tuple[Any, Any]:
    """(TrainOptions, Preprocessing) from the parsed recipe options (keys: ``RECIPE_KEYS``)."""
    from leukedge.trainer.fit import Schedule
    from leukedge.trainer.model import ModelConfig, make_preprocessing
    from leukedge.trainer.training import TrainOptions

    v = values
    spec = make_preprocessing(
        size=v["input_size"],
        log_enabled=v["log_enabled"],
        log_ksize=v["log_ksize"],
        log_sigma=v["log_sigma"],
        log_aperture=int(v["log_aperture"]),
        log_alpha=v["log_alpha"],
        log_apply_at=v["log_apply_at"],
        crop_mode=v["crop_mode"],
        crop_margin=v["crop_margin"],
    )
    options = TrainOptions(
        epochs=v["epochs"],
        batch_size=v["batch_size"],
        learning_rate=v["learning_rate"],
        patience=patience,
        seed=v["seed"],
        balance=v["balance"],
        workers=v["workers"],
        model=ModelConfig(
            width=v["width"], dense=(v["dense"], v["dense"]), dropout=v["dropout"], batch_norm=v["batch_norm"]
        ),
        samples_per_epoch=v["samples_per_epoch"],
        schedule=Schedule(v["schedule"], warmup_epochs=v["warmup_epochs"]),
        label_smoothing=v["label_smoothing"],
        stain=v["stain"],
        decision=decision,
    )
    return options, spec
