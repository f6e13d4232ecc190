"""The paper's Table I baselines on hand-crafted cell features (scikit-learn).

* ``knn``: k-nearest neighbours (k = 7) on all FEATURE_NAMES, standardised;
* ``svm``: RBF support-vector machine on the same features, class-balanced;
* ``area``: logistic regression on cell area alone, class-balanced.

In C-NMC the ALL cells are on average larger than the normal ones, so the
area-only model is the bar a CNN must clear to show it learned more than size.
Each is fitted on the training subjects' cells and scored on the same cells
as the CNN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from leukedge.trainer.features import FEATURE_NAMES

BASELINES = {
    "knn": "KNN (k=7) on 20 hand-crafted features",
    "svm": "SVM (RBF, class-balanced) on 20 hand-crafted features",
    "area": "logistic regression on cell area alone",
}


def _make(name: str, seed: int) -> Any:
    from leukedge.extras import require

    require("sklearn")
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    models = {
        "knn": KNeighborsClassifier(n_neighbors=7),
        # Platt-scaled on held-out folds for probabilities (SVC(probability=True) is deprecated).
        "svm": CalibratedClassifierCV(
            SVC(kernel="rbf", C=1.0, gamma="scale", class_weight="balanced", random_state=seed),
            method="sigmoid",
            ensemble=False,
        ),
        "area": LogisticRegression(class_weight="balanced"),
    }
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), models[name])


def _columns(name: str, features: np.ndarray) -> np.ndarray:
    return features[:, [FEATURE_NAMES.index("area")]] if name == "area" else features


def fit_baselines(features: np.ndarray, y: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Fitted baseline pipelines, keyed as in BASELINES."""
    fitted = {}
    for name in BASELINES:
        fitted[name] = _make(name, seed).fit(_columns(name, features), np.asarray(y, np.int64))
    return fitted


def predict_baselines(fitted: dict[str, Any], features: np.ndarray) -> dict[str, np.ndarray]:
    """ALL probability of each cell for each fitted baseline."""
    out = {}
    for name, model in fitted.items():
        classes = list(model.classes_)
        out[name] = model.predict_proba(_columns(name, features))[:, classes.index(1)]
    return out
