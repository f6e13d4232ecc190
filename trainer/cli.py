"""``leukedge train`` and ``leukedge evaluate``: parse, call one library function, print.

Nothing heavy is imported here; TensorFlow loads inside the command bodies.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from leukedge.device.runtime_options import runtime_options
from leukedge.trainer.recipe_cli import build_recipe, recipe_options


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
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Model file to write (.h5)."
)
@recipe_options
@click.option(
    "--patience", default=15, show_default=True, help="Stop after this many epochs without improvement (0: never)."
)
@click.option("--val-subjects", help="Validation subjects, e.g. '1,5,H1' (default: a seeded draw).")
@click.option("--test-subjects", help="Subjects held out for evaluate (default: a seeded draw).")
@click.option("--val-fold", help="Validate on a C-NMC fold instead (e.g. fold_2).")
@click.option("--test-fold", help="Hold out a C-NMC fold for testing.")
@click.option("--val-fraction", default=0.2, show_default=True, help="Share of each class's subjects drawn (0: none).")
@click.option("--test-fraction", default=0.2, show_default=True, help="Share held out for testing (0: none).")
@click.option(
    "--threshold-from",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A cv.json of 'leukedge cv': take the decision threshold it chose (default: 0.5).",
)
@click.option("--restart", is_flag=True, help="Discard the checkpoint of an earlier run instead of resuming it.")
def train(
    data: tuple[Path, ...],
    out: Path,
    patience: int,
    val_subjects: str | None,
    test_subjects: str | None,
    val_fold: str | None,
    test_fold: str | None,
    val_fraction: float,
    test_fraction: float,
    threshold_from: Path | None,
    restart: bool,
    **recipe: object,
) -> None:
    """Train the VGG13 on DATA: one or more folders (C-NMC training_data/fold_k/{all,hem} or flat
    {all,hem}), or a text file listing one folder per line.

    Splits by subject (never by image) after removing near-duplicate cells,
    trains with balanced augmentation, keeps the best validation epoch (or
    the last, with --patience 0), and writes OUT (.h5, manifest inside) and
    OUT's .split.json.  An interrupted run resumes from OUT's .ckpt folder.
    """
    _quiet_tensorflow()
    from leukedge.trainer.training import SplitOptions
    from leukedge.trainer.training import train as run_training

    decision, cv_doc = _decision_from_cv(threshold_from) if threshold_from else (None, None)
    options, spec = build_recipe(recipe, patience=patience, decision=decision)
    split = SplitOptions(
        val_subjects=_subjects(val_subjects),
        test_subjects=_subjects(test_subjects),
        val_fold=_fold(val_fold),
        test_fold=_fold(test_fold),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
    )
    result = run_training(
        data,
        out,
        options=options,
        split=split,
        preprocessing=spec,
        resume=not restart,
        progress=click.echo,
        cv_summary=cv_doc,
    )
    v = result.validation
    click.echo(
        f"saved {result.model_path} (best epoch {result.best_epoch} of {result.epochs_run}"
        f"{', stopped early' if result.stopped_early else ''}); split in {result.split_path}"
    )
    if v.get("cells"):
        click.echo(
            f"validation ({v['cells']} cells, {v['subjects']} subjects): accuracy {v['accuracy']:.3f}, "
            f"sensitivity {v['sensitivity']:.3f}, specificity {v['specificity']:.3f}, AUC {v['roc_auc']:.3f}"
        )
    click.echo(
        f"test subjects held out: {', '.join(result.manifest.provenance['split']['subjects']['test']) or 'none'}"
    )
    d = result.manifest.decision
    click.echo(f"decision threshold {d.threshold:g} ({d.policy})")


def _decision_from_cv(path: Path) -> tuple[object, dict]:
    """The Decision a cv.json chose for its CNN (``cv.decision_from_cv``) and its summary."""
    from leukedge.errors import InvalidInputError
    from leukedge.trainer.cv import cv_summary, decision_from_cv

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        decision, summary = decision_from_cv(doc), cv_summary(doc, str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(
            f"--threshold-from {path}: not a cv.json of 'leukedge cv' ({type(exc).__name__}: {exc})",
            hint="pass the cv.json that 'leukedge cv --out DIR' wrote in DIR",
        ) from exc
    if not 0.0 <= decision.threshold <= 1.0:
        raise InvalidInputError(f"--threshold-from {path}: threshold {decision.threshold} is outside [0, 1]")
    return decision, summary


@click.command()
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for cv.json, cv.md, plots."
)
@click.option("--folds", "k", default=4, show_default=True, help="Folds, grouped by subject and stratified by class.")
@recipe_options
@click.option("--no-baselines", is_flag=True, help="Skip the area-only, SVM and KNN baselines.")
@click.option("--bootstrap", "n_boot", default=1000, show_default=True, help="Bootstrap replicates for the intervals.")
def cv(data: tuple[Path, ...], out: Path, k: int, no_baselines: bool, n_boot: int, **recipe: object) -> None:
    """Cross-validate a training recipe on DATA by subject: K folds, each subject held out once.

    Trains the recipe (the same options as 'leukedge train') K times for exactly
    --epochs epochs, predicts each fold's subjects out of fold, and writes per-fold
    and pooled AUC, AUC within equal-area deciles, sensitivity and specificity at the
    threshold that maximises balanced accuracy on the pooled predictions, per-subject
    accuracy, with 95% intervals from a bootstrap over subjects, beside the baselines
    on the same folds.  Resumes by fold when run again with the same recipe.
    """
    _quiet_tensorflow()
    from leukedge.trainer.cv import cross_validate

    options, spec = build_recipe(recipe, patience=0)
    cross_validate(
        data, out, k=k, options=options, spec=spec, baselines=not no_baselines, n_boot=n_boot, progress=click.echo
    )
    click.echo((out / "cv.md").read_text(encoding="utf-8"))
    click.echo(f"written: {out / 'cv.json'}, {out / 'cv.md'}, {out / 'oof.csv'}")


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=Path))
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
    data: tuple[Path, ...],
    report_dir: Path | None,
    baselines: bool,
    backend: str,
    precision: str,
    batch_size: int,
    subjects: str,
    n_boot: int,
    json_out: bool,
) -> None:
    """Evaluate MODEL (.h5 or bundle folder) on the labelled cells in DATA (folders or a list file), by subject.

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
    cv = doc["model"].get("cv")
    if cv and cv.get("threshold_across_folds"):
        spread = cv["threshold_across_folds"]
        lines.append(
            f"threshold {doc['model']['decision']['threshold']:g} chosen by subject-grouped CV "
            f"({len(cv['folds'])} folds; each fold's own best threshold: {spread['min']:.3f}–{spread['max']:.3f})"
        )
    lines.extend(f"note: {n}" for n in doc.get("notes", []))
    skipped = doc["data"]["skipped"]
    if skipped:
        lines.append(f"skipped {len(skipped)} unreadable file(s), e.g. {skipped[0]['file']}: {skipped[0]['reason']}")
    if "report" in doc:
        lines.append(f"report: {doc['report']['html']}")
    return "\n".join(lines)
