"""``leukedge train`` and ``leukedge evaluate``: parse, call one library function, print.

Nothing heavy is imported here; TensorFlow loads inside the command bodies.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from leukedge.device.runtime_options import runtime_options
from leukedge.manifest import LOG_APPLY_AT, LogSpec


def _subjects(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (text or "").split(",") if s.strip())


def _fold(text: str | None) -> str | None:
    if not text:
        return None
    t = text.strip().lower()
    return f"fold_{t}" if t.isdigit() else t


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up chatter is not for our users; an explicit setting wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Model file to write (.h5)."
)
@click.option("--epochs", default=60, show_default=True, help="Most epochs to train.")
@click.option("--patience", default=15, show_default=True, help="Stop after this many epochs without improvement.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--lr", "learning_rate", default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--width", default=0.25, show_default=True, help="Channel multiplier (1.0 = VGG's 64…512).")
@click.option("--dense", default=256, show_default=True, help="Units of each of the two dense layers.")
@click.option("--dropout", default=0.5, show_default=True, help="Dropout after each dense layer.")
@click.option("--batch-norm/--no-batch-norm", default=False, show_default=True, help="BatchNorm after each conv.")
@click.option("--val-subjects", help="Validation subjects, e.g. '1,5,H1' (default: a seeded draw).")
@click.option("--test-subjects", help="Subjects held out for evaluate (default: a seeded draw).")
@click.option("--val-fold", help="Validate on a C-NMC fold instead (e.g. fold_2).")
@click.option("--test-fold", help="Hold out a C-NMC fold for testing.")
@click.option("--val-fraction", default=0.2, show_default=True, help="Share of each class's subjects drawn.")
@click.option("--test-fraction", default=0.2, show_default=True, help="Share held out for testing (0: none).")
@click.option("--seed", default=0, show_default=True, help="Seeds the split, the weights and augmentation.")
@click.option("--log/--no-log", "log_enabled", default=True, show_default=True, help="LoG sharpening.")
@click.option("--log-ksize", default=LogSpec.gaussian_ksize, show_default=True, help="Gaussian kernel size (odd).")
@click.option("--log-sigma", default=LogSpec.gaussian_sigma, show_default=True, help="Gaussian sigma.")
@click.option(
    "--log-aperture", type=click.Choice(["1", "3"]), default=str(LogSpec.laplacian_aperture), show_default=True
)
@click.option("--log-alpha", default=LogSpec.alpha, show_default=True, help="Sharpening strength.")
@click.option("--log-apply-at", type=click.Choice(LOG_APPLY_AT), default=LogSpec.apply_at, show_default=True)
@click.option("--restart", is_flag=True, help="Discard the checkpoint of an earlier run instead of resuming it.")
@click.option("--workers", type=int, help="Parallel image readers (default: automatic).")
def train(
    data: Path,
    out: Path,
    epochs: int,
    patience: int,
    batch_size: int,
    learning_rate: float,
    width: float,
    dense: int,
    dropout: float,
    batch_norm: bool,
    val_subjects: str | None,
    test_subjects: str | None,
    val_fold: str | None,
    test_fold: str | None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    log_enabled: bool,
    log_ksize: int,
    log_sigma: float,
    log_aperture: str,
    log_alpha: float,
    log_apply_at: str,
    restart: bool,
    workers: int | None,
) -> None:
    """Train the VGG13 on DATA (C-NMC training_data/fold_k/{all,hem} or flat {all,hem} folders).

    Splits by subject (never by image) after removing near-duplicate cells,
    trains with class-balanced augmentation, keeps the best validation epoch,
    and writes OUT (.h5, manifest inside) and OUT's .split.json.  An
    interrupted run resumes from OUT's .ckpt folder when run again.
    """
    _quiet_tensorflow()
    from leukedge.trainer.model import ModelConfig, make_preprocessing
    from leukedge.trainer.training import SplitOptions, TrainOptions
    from leukedge.trainer.training import train as run_training

    spec = make_preprocessing(
        log_enabled=log_enabled,
        log_ksize=log_ksize,
        log_sigma=log_sigma,
        log_aperture=int(log_aperture),
        log_alpha=log_alpha,
        log_apply_at=log_apply_at,
    )
    options = TrainOptions(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        patience=patience,
        seed=seed,
        workers=workers,
        model=ModelConfig(width=width, dense=(dense, dense), dropout=dropout, batch_norm=batch_norm),
    )
    split = SplitOptions(
        val_subjects=_subjects(val_subjects),
        test_subjects=_subjects(test_subjects),
        val_fold=_fold(val_fold),
        test_fold=_fold(test_fold),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )
    result = run_training(
        data, out, options=options, split=split, preprocessing=spec, resume=not restart, progress=click.echo
    )
    v = result.validation
    click.echo(
        f"saved {result.model_path} (best epoch {result.best_epoch} of {result.epochs_run}"
        f"{', stopped early' if result.stopped_early else ''}); split in {result.split_path}"
    )
    click.echo(
        f"validation ({v['cells']} cells, {v['subjects']} subjects): accuracy {v['accuracy']:.3f}, "
        f"sensitivity {v['sensitivity']:.3f}, specificity {v['specificity']:.3f}, AUC {v['roc_auc']:.3f}"
    )
    click.echo(
        f"test subjects held out: {', '.join(result.manifest.provenance['split']['subjects']['test']) or 'none'}"
    )


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), help="Write JSON + HTML here."
)
@click.option("--baselines", is_flag=True, help="Also fit and score KNN, SVM and area-only baselines.")
@runtime_options
@click.option("--batch-size", default=32, show_default=True)
@click.option(
    "--subjects",
    type=click.Choice(["unseen", "test", "val", "all"]),
    default="unseen",
    show_default=True,
    help="Which subjects: unseen by the model, its test or validation subjects, or all (optimistic).",
)
@click.option("--bootstrap", "n_boot", default=1000, show_default=True, help="Bootstrap replicates for the intervals.")
@click.option("--json", "json_out", is_flag=True, help="Print the full result as JSON.")
def evaluate(
    model: Path,
    data: Path,
    report_dir: Path | None,
    baselines: bool,
    backend: str,
    precision: str,
    batch_size: int,
    subjects: str,
    n_boot: int,
    json_out: bool,
) -> None:
    """Evaluate MODEL (.h5 or bundle folder) on the labelled cells in DATA, by subject.

    Subjects the model was trained or validated on are left out (see
    --subjects).  Prints
    accuracy, sensitivity, specificity, weighted F1 and ROC-AUC with 95%
    intervals from a bootstrap over subjects; --report adds evaluation.json
    and a self-contained report.html.
    """
    _quiet_tensorflow()
    from leukedge.trainer.evaluation import evaluate as run_evaluation

    doc = run_evaluation(
        model,
        data,
        report_dir=report_dir,
        baselines=baselines,
        backend=backend,
        precision=precision,
        batch_size=batch_size,
        subjects=subjects,
        n_boot=n_boot,
        progress=None if json_out else click.echo,
    )
    if json_out:
        click.echo(json.dumps(doc, indent=1))
        return
    click.echo(_summary(doc))


def _summary(doc: dict) -> str:
    def cell(m: dict, key: str) -> str:
        v = m["metrics"][key]
        if v["value"] is None:
            return "—"
        lo, hi = v["ci95"]
        return f"{v['value']:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{v['value']:.3f}"

    models = {"cnn": doc["cnn"], **doc.get("baselines", {})}
    keys = ("accuracy", "sensitivity", "specificity", "weighted_f1", "roc_auc")
    lines = [f"{'':8}" + "".join(f"{k:>26}" for k in keys)]
    for name, m in models.items():
        lines.append(f"{name:8}" + "".join(f"{cell(m, k):>26}" for k in keys))
    c = doc["cnn"]
    wb = c.get("area", {}).get("within_bin_auc", {}).get("auc")
    lines.append(
        f"{c['cells']} cells ({c['cells_all']} ALL / {c['cells_hem']} normal), "
        f"{len(c['subjects_all'])} ALL subjects, {len(c['subjects_hem'])} normal donors; "
        f"AUC within equal-area bins {wb if wb is None else round(wb, 3)}; ECE {c['calibration']['ece']:.3f}"
    )
    lines.extend(f"note: {n}" for n in doc.get("notes", []))
    skipped = doc["data"]["skipped"]
    if skipped:
        lines.append(f"skipped {len(skipped)} unreadable file(s), e.g. {skipped[0]['file']}: {skipped[0]['reason']}")
    if "report" in doc:
        lines.append(f"report: {doc['report']['html']}")
    return "\n".join(lines)
