#!/usr/bin/env python3
"""Fixture models for `detour-train import`, made by the real libraries.

Trains LightGBM, XGBoost and scikit-learn gradient boosting (both the classic
`GradientBoostingClassifier` and `HistGradientBoostingClassifier`), and
writes a small feed-forward network in safetensors, on a small
synthetic table whose columns carry carrier_failure feature names, in another
order than Detour's schema, with missing values. Saves each model the way its
library does, and the libraries' own `predict_proba` on held-out rows, so the
Rust tests check parity without Python.

Pinned versions (the fixtures were made with exactly these):

    python3 -m venv /tmp/byom && /tmp/byom/bin/pip install -r training/examples/byom-requirements.txt
    /tmp/byom/bin/python training/examples/byom_fixtures.py training/tests/fixtures/byom

Writes into the folder given:
    lightgbm.txt        Booster.save_model (text format)
    xgboost.json        Booster.save_model (JSON), objective binary:logistic
    sklearn_hgb.json    HistGradientBoostingClassifier, exported by `export_hgb`
    sklearn_gbc.json    GradientBoostingClassifier, exported by `export_gbc`
    mlp.json            a feed-forward network's description (`mlp_fixture`)
    mlp.safetensors     its weights, in PyTorch state_dict names
    rows.csv            1,000 held-out rows (about 15% of values missing) with
                        each library's predict_proba[:, 1]: lightgbm, xgboost,
                        sklearn_hgb; and mlp, the network's NumPy forward pass
    gbc_rows.csv        1,000 held-out rows without missing values (the classic
                        estimator refuses them) with sklearn_gbc
    lightgbm_categorical.txt, xgboost_categorical.json
                        the same libraries with departure_weekday declared
                        categorical (`categorical_fixtures`)
    categorical_rows.csv
                        1,000 held-out rows for them, with lightgbm, xgboost
"""

import csv
import json
import sys
from pathlib import Path

import lightgbm
import numpy as np
import sklearn
import xgboost
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier

# Column order of the fixture models: a subset of the carrier_failure schema,
# deliberately not in the schema's order.
FEATURES = [
    "lane_failure_rate_7d",
    "carrier_failure_rate_28d",
    "scheduled_transit_hours",
    "origin_dock_utilisation",
    "carrier_lane_mean_delay_28d",
    "departure_hour_sin",
    "origin_backlog_to_limit",
    "carrier_lane_volume_28d_log",
]
TRAIN_ROWS = 4000
TEST_ROWS = 1000
TREES = 40


def table(rng, n, missing):
    x = np.column_stack(
        [
            rng.beta(2, 8, n),
            rng.beta(2, 10, n),
            rng.gamma(3.0, 8.0, n),
            rng.uniform(0, 1.2, n),
            rng.normal(20, 30, n),
            np.sin(rng.uniform(0, 2 * np.pi, n)),
            rng.exponential(0.5, n),
            np.log1p(rng.poisson(40, n)),
        ]
    )
    # Five decimals: the CSV then holds every value exactly as the libraries saw it.
    x = np.round(x, 5)
    logit = (
        -1.6
        + 4.0 * x[:, 0]
        + 3.0 * x[:, 1]
        + 0.02 * x[:, 2]
        + 1.5 * (x[:, 3] > 0.9)
        + 0.01 * x[:, 4]
        - 0.4 * x[:, 5]
        + 0.8 * np.minimum(x[:, 6], 2)
        - 0.2 * x[:, 7]
    )
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    if missing:
        # Features 0..5 miss values in training and serving alike; feature 6
        # only at serving time (LightGBM's "no missing seen" path).
        for j in range(6):
            x[rng.uniform(size=n) < 0.15, j] = np.nan
    return x, y


def export_gbc(model, names):
    """GradientBoostingClassifier as plain arrays: raw = init + rate * sum(tree)."""
    init = float(model._raw_predict_init(np.zeros((1, len(names)), dtype=np.float32))[0, 0])
    return {
        "library": "sklearn.ensemble.GradientBoostingClassifier",
        "sklearn_version": sklearn.__version__,
        "input_dtype": "float32",
        "feature_names": names,
        "n_features": len(names),
        "learning_rate": model.learning_rate,
        "init_raw_score": init,
        "link": "sigmoid",
        "trees": [
            {
                "children_left": t.children_left.tolist(),
                "children_right": t.children_right.tolist(),
                "feature": t.feature.tolist(),
                "threshold": t.threshold.tolist(),
                "value": t.value[:, 0, 0].tolist(),
                "n_node_samples": t.weighted_n_node_samples.tolist(),
            }
            for t in (e[0].tree_ for e in model.estimators_)
        ],
    }


def export_hgb(model, names):
    """HistGradientBoostingClassifier in the same shape; its leaf values are
    already shrunk, so the learning rate written is 1."""
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise SystemExit("categorical splits are not exported")
        leaf = nodes["is_leaf"].astype(bool)
        trees.append(
            {
                # Signed first: a leaf's -1 must not wrap around in uint32.
                "children_left": np.where(leaf, -1, nodes["left"].astype(np.int64)).tolist(),
                "children_right": np.where(leaf, -1, nodes["right"].astype(np.int64)).tolist(),
                "feature": np.where(leaf, -2, nodes["feature_idx"].astype(np.int64)).tolist(),
                "threshold": np.where(leaf, -2.0, nodes["num_threshold"]).tolist(),
                "missing_go_to_left": nodes["missing_go_to_left"].astype(int).tolist(),
                "value": nodes["value"].tolist(),
                "n_node_samples": nodes["count"].tolist(),
            }
        )
    return {
        "library": "sklearn.ensemble.HistGradientBoostingClassifier",
        "sklearn_version": sklearn.__version__,
        "input_dtype": "float64",
        "feature_names": names,
        "n_features": len(names),
        "learning_rate": 1.0,
        "init_raw_score": float(np.ravel(model._baseline_prediction)[0]),
        "link": "sigmoid",
        "trees": trees,
    }


def mlp_fixture(out, x_train, names):
    """A feed-forward network (8 -> 64 -> 64 -> 1; ReLU, tanh) in PyTorch's
    state_dict naming, saved with safetensors, and its description. The
    weights are random: parity needs a network, not a good one. Returns the
    NumPy forward pass (float64 over the float32 weights) as a function."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(23)
    sizes = [len(names), 64, 64, 1]
    tensors = {}
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        tensors[f"net.{2 * i}.weight"] = rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in)).astype(np.float32)
        tensors[f"net.{2 * i}.bias"] = rng.normal(0, 0.1, n_out).astype(np.float32)
    tensors["norm.mean"] = np.nanmean(x_train, axis=0).astype(np.float32)
    tensors["norm.std"] = np.nanstd(x_train, axis=0).astype(np.float32)
    save_file(tensors, str(out / "mlp.safetensors"))
    activations = ["relu", "tanh", "identity"]
    description = {
        "format": "detour-mlp/1",
        "inputs": names,
        "weights": "mlp.safetensors",
        "normalize": {"mean": "norm.mean", "std": "norm.std"},
        "layers": [
            {"weight": f"net.{2 * i}.weight", "bias": f"net.{2 * i}.bias", "activation": a}
            for i, a in enumerate(activations)
        ],
    }
    (out / "mlp.json").write_text(json.dumps(description, indent=2) + "\n")
    t = {k: v.astype(np.float64) for k, v in tensors.items()}
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "identity": lambda z: z}

    def forward(x):
        # A missing input is the normalisation mean: 0 once normalised.
        h = np.where(np.isnan(x), 0.0, (x - t["norm.mean"]) / t["norm.std"])
        for i, a in enumerate(activations):
            h = act[a](h @ t[f"net.{2 * i}.weight"].T + t[f"net.{2 * i}.bias"])
        return 1 / (1 + np.exp(-h[:, 0]))

    return forward


def categorical_fixtures(out):
    """LightGBM and XGBoost with a categorical split: FEATURES plus
    departure_weekday (0..6, some missing), declared categorical to each
    library. Returns the held-out rows and each library's probabilities."""
    import pandas as pd

    rng = np.random.default_rng(29)
    names = FEATURES + ["departure_weekday"]

    def frame(n):
        x, _ = table(rng, n, missing=True)
        day = rng.integers(0, 7, n).astype(float)
        effect = np.array([0.0, 0.9, -0.7, 0.2, 1.3, -1.1, 0.4])[day.astype(int)]
        logit = -1.2 + 3.0 * np.nan_to_num(x[:, 0]) + effect
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
        day[rng.uniform(size=n) < 0.1] = np.nan
        d = pd.DataFrame(np.column_stack([x, day]), columns=names)
        d["departure_weekday"] = pd.Categorical(d["departure_weekday"], categories=range(7))
        return d, y

    train, y = frame(TRAIN_ROWS)
    test, _ = frame(TEST_ROWS)
    lgb = lightgbm.LGBMClassifier(n_estimators=TREES, num_leaves=15, verbose=-1, min_data_per_group=20)
    lgb.fit(train, y)
    lgb.booster_.save_model(out / "lightgbm_categorical.txt")
    xgb = xgboost.XGBClassifier(
        n_estimators=TREES, max_depth=4, learning_rate=0.1, enable_categorical=True,
        tree_method="hist", max_cat_to_onehot=1,
    )
    xgb.fit(train, y)
    xgb.get_booster().save_model(out / "xgboost_categorical.json")
    values = test.assign(departure_weekday=test["departure_weekday"].astype(float)).to_numpy()
    return values, names, {
        "lightgbm": lgb.predict_proba(test)[:, 1],
        "xgboost": xgb.predict_proba(test)[:, 1],
    }


def write_rows(path, x, columns, names=FEATURES):
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(names + list(columns))
        for i, row in enumerate(x):
            values = ["" if np.isnan(v) else repr(float(v)) for v in row]
            out.writerow(values + [repr(float(columns[c][i])) for c in columns])


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(17)
    x, y = table(rng, TRAIN_ROWS, missing=True)
    test, _ = table(rng, TEST_ROWS, missing=True)
    test[rng.uniform(size=TEST_ROWS) < 0.15, 6] = np.nan

    lgb = lightgbm.LGBMClassifier(
        n_estimators=TREES, num_leaves=15, learning_rate=0.1, min_child_samples=20, verbose=-1
    )
    lgb.fit(x, y, feature_name=FEATURES)
    lgb.booster_.save_model(out / "lightgbm.txt")

    xgb = xgboost.XGBClassifier(
        n_estimators=TREES, max_depth=4, learning_rate=0.1, objective="binary:logistic"
    )
    xgb.fit(x, y)
    booster = xgb.get_booster()
    booster.feature_names = FEATURES
    booster.save_model(out / "xgboost.json")
    booster.feature_names = None

    hgb = HistGradientBoostingClassifier(max_iter=TREES, max_leaf_nodes=15, random_state=0)
    hgb.fit(x, y)
    (out / "sklearn_hgb.json").write_text(json.dumps(export_hgb(hgb, FEATURES)))

    mlp = mlp_fixture(out, x, FEATURES)

    write_rows(
        out / "rows.csv",
        test,
        {
            "lightgbm": lgb.predict_proba(test)[:, 1],
            "xgboost": xgb.predict_proba(test)[:, 1],
            "sklearn_hgb": hgb.predict_proba(test)[:, 1],
            "mlp": mlp(test),
        },
    )

    x_full, y_full = table(rng, TRAIN_ROWS, missing=False)
    gbc_test, _ = table(rng, TEST_ROWS, missing=False)
    gbc = GradientBoostingClassifier(n_estimators=TREES, max_depth=3, random_state=0)
    gbc.fit(x_full, y_full)
    (out / "sklearn_gbc.json").write_text(json.dumps(export_gbc(gbc, FEATURES)))
    write_rows(out / "gbc_rows.csv", gbc_test, {"sklearn_gbc": gbc.predict_proba(gbc_test)[:, 1]})

    values, names, probabilities = categorical_fixtures(out)
    write_rows(out / "categorical_rows.csv", values, probabilities, names)

    print(
        f"lightgbm {lightgbm.__version__}, xgboost {xgboost.__version__}, "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}: fixtures in {out}"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "training/tests/fixtures/byom")
