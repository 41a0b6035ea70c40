"""The churn model's fit: scikit-learn's logistic regression on standardised features.

Imported only where a model is trained (``crm models train churn``, the churn worker, the
bench), never by the API, which reads scores, nor by the sender, whose Lambda package leaves
scikit-learn out (adapters/cli_package.py). What comes out is plain numbers
(application.churn.ChurnParameters): scoring needs no scikit-learn, and no pickle is ever
loaded from the database.
"""

from __future__ import annotations

from application.churn import FEATURES, ChurnParameters, model_inputs


def fit_logistic(rows: list[list[float]], churned: list[bool]) -> ChurnParameters:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    inputs = np.array([model_inputs(row) for row in rows], dtype=float)
    scaler = StandardScaler().fit(inputs)
    # A feature constant over the training fans has scale 0: StandardScaler answers 1 for it,
    # which keeps its term at 0 for every fan that shares the constant.
    model = LogisticRegression(C=1.0, max_iter=1000).fit(
        scaler.transform(inputs), np.array(churned, dtype=bool)
    )
    return ChurnParameters(
        features=FEATURES,
        means=tuple(float(v) for v in scaler.mean_),
        scales=tuple(float(v) for v in scaler.scale_),
        coefficients=tuple(float(v) for v in model.coef_[0]),
        intercept=float(model.intercept_[0]),
    )
