"""How much cell-type information each layer carries on the held-out split: supervised and unsupervised ceilings.

On the 80/20 split of ``ablation.py`` / ``integration.py`` (``--seed``, default 0), classifiers are fitted on the 80%
reference cells **with their labels** and predict the held-out cells' ``cell_type`` from one layer only:

``logreg``    logistic regression on all features (RNA: normalize-total + log1p; ATAC: binarised TF-IDF with the
              inverse document frequency of the reference cells) at inverse regularisation strengths ``--C``; the
              best of them (chosen on the held-out cells, so an optimistic figure) is the supervised ceiling of a
              linear read-out;
``mlp``       with ``--mlp``: a one-hidden-layer (256) network on the same features (alpha 0.01, early stopping),
              a non-linear supervised read-out (slow: ~12 min per layer on one thread);
``knn15``     a 15-NN classifier on a 50-component PCA (RNA) / LSI (ATAC; first component dropped), fitted on
              reference cells: what an unsupervised per-layer embedding gives to the same classifier as the
              integration benchmarks use;
``scmamba rna->other knn15``
              with ``--model DIR``: a SCMAMBA model saved by ``ablation.py --save`` (trained on the same split's
              reference cells, same ``--seed``); the 15-NN fitted on the reference cells' RNA embeddings predicts
              the held-out cells from their other-layer embeddings.

Every row also has ``recall`` per cell type (where each read-out loses) and, where the data has a coarser
annotation (``--coarse-key``, default ``cell_type_coarse``), ``acc_coarse``: the same predictions scored after
mapping fine types to their coarse group.

With ``--match``, supervised cross-modal maps fitted on the reference cells' pairing give the held-out FOSCTTM that
such a map reaches, over all held-out cells and inside each batch (``--batch-key``): CCA between the two layers'
reductions (10 and 20 components), and a ridge regression and a one-hidden-layer (512) network from the
log-normalised RNA to the other layer's reduction. They put an integration's match in context, and show how much
of a FOSCTTM over all cells comes from batches being easy to tell apart: the more an embedding mixes batches, the
closer its FOSCTTM over all cells comes to its FOSCTTM inside a batch.

It also prints ``type_oracle_foscttm``: the FOSCTTM of embeddings that put every cell exactly on its cell type and
are random within it (sum over types of n_k (n_k - 1) / 2, over N (N - 1)). An integration whose cross-modal
label accuracy is far below 1 cannot reach it; below it needs within-type matching.

A label-transfer accuracy from an integrated embedding (RNA reference -> other-layer query) above the other layer's
own supervised ceiling is not expected: the query side has only that layer's information.

Usage::

    python -m benchmarks.ceiling --data ../shared/data/snareseq_mouse_cortex_chen2019.h5mu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.helpers.common import (
    RESULTS,
    SHARED_DATA,
    foscttm_within,
    holdout_split,
    markdown_table,
    other_modality,
)
from benchmarks.helpers.methods import LayerReducer


def type_oracle_foscttm(labels: np.ndarray) -> float:
    """FOSCTTM of embeddings exact on cell type and random within it."""
    _, counts = np.unique(labels, return_counts=True)
    n = len(labels)
    return float((counts * (counts - 1) / 2).sum() / (n * (n - 1)))


def match_oracles(z_tr, z_te, rna_tr, rna_te, groups: np.ndarray | None, seed: int) -> list[dict]:
    """Held-out FOSCTTM of supervised cross-modal maps fitted on the reference pairs (see the module docstring)."""
    from sklearn.cross_decomposition import CCA
    from sklearn.linear_model import Ridge
    from sklearn.neural_network import MLPRegressor

    from scmamba.metrics import foscttm

    rna_tr, rna_te = (x.toarray() if hasattr(x, "toarray") else np.asarray(x) for x in (rna_tr, rna_te))

    def cca(k: int) -> tuple[np.ndarray, np.ndarray]:  # both layers' reductions into k shared components
        return CCA(n_components=k, max_iter=1000).fit(z_tr[0], z_tr[1]).transform(z_te[0], z_te[1])

    def regression(estimator) -> tuple[np.ndarray, np.ndarray]:  # predicted vs measured other-layer reduction
        # unscaled target: each component weighs by the variance it explains
        return estimator.fit(rna_tr, z_tr[1]).predict(rna_te), z_te[1]

    maps = {
        "CCA 10": lambda: cca(10),
        "CCA 20": lambda: cca(20),
        "ridge RNA->other": lambda: regression(Ridge(alpha=10.0)),
        "MLP RNA->other": lambda: regression(MLPRegressor(hidden_layer_sizes=(512,), alpha=1e-3, early_stopping=True,
                                                          max_iter=200, random_state=seed)),
    }  # fmt: skip
    rows = []
    for name, fit_map in maps.items():
        t0 = time.perf_counter()
        a, b = fit_map()
        row = {"map": name, "FOSCTTM": round(foscttm(a, b), 4)}
        if groups is not None:
            row["FOSCTTM_within_batch"] = round(foscttm_within(a, b, groups), 4)
        rows.append({**row, "wall_s": round(time.perf_counter() - t0, 1)})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(SHARED_DATA / "snareseq_mouse_cortex_chen2019.h5mu"))
    parser.add_argument("--label-key", default="cell_type")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--C", type=float, nargs="+", default=[0.03, 0.1, 0.3, 1.0, 3.0])
    parser.add_argument("--mlp", action="store_true", help="also fit the (slow) supervised MLP read-out")
    parser.add_argument("--model", default=None, help="a SCMAMBA saved by ablation.py --save on this split")
    parser.add_argument("--coarse-key", default="cell_type_coarse")
    parser.add_argument("--match", action="store_true", help="also the supervised cross-modal match oracles")
    parser.add_argument("--batch-key", default="batch", help="obs column for FOSCTTM inside a batch (--match)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import mudata as md
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, recall_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    md.set_options(pull_on_update=False)
    mdata = md.read_h5mu(args.data)
    other, kind = other_modality(mdata)
    obs = mdata.obs if args.label_key in mdata.obs else mdata["rna"].obs
    y = obs[args.label_key].astype(str).to_numpy()
    to_coarse = None
    if args.coarse_key in obs:
        pairs = obs[[args.label_key, args.coarse_key]].astype(str).drop_duplicates()
        if pairs[args.label_key].is_unique:  # each fine type sits in one coarse group
            to_coarse = dict(zip(pairs[args.label_key], pairs[args.coarse_key], strict=True))
    train, test = holdout_split(mdata.n_obs, args.seed)
    X_rna = sparse.csr_matrix(mdata["rna"].X)
    X_oth = sparse.csr_matrix(mdata[other].X)

    reducer = LayerReducer(kind, seed=args.seed)
    z_tr = reducer.fit_transform(X_rna[train], X_oth[train])
    z_te = reducer.transform(X_rna[test], X_oth[test])
    full = {
        "rna": (reducer._rna(X_rna[train]), reducer._rna(X_rna[test])),
        kind: (reducer._tfidf(X_oth[train]), reducer._tfidf(X_oth[test]))
        if kind == "atac"
        else (reducer._clr(X_oth[train]), reducer._clr(X_oth[test])),
    }
    types = np.unique(y[test])

    def score(layer: str, name: str, pred: np.ndarray, wall_s: float) -> dict:
        row = {
            "layer": layer, "classifier": name, "acc": round(float((pred == y[test]).mean()), 4),
            "macro_f1": round(float(f1_score(y[test], pred, average="macro")), 4), "wall_s": round(wall_s, 1),
            "recall": dict(zip(types, np.round(recall_score(y[test], pred, labels=types, average=None), 3).tolist(),
                               strict=True)),
        }  # fmt: skip
        if to_coarse is not None:
            coarse = np.vectorize(to_coarse.get)
            row["acc_coarse"] = round(float((coarse(pred) == coarse(y[test])).mean()), 4)
        return row

    rows = []
    for i, layer in enumerate(("rna", kind)):
        classifiers = [(f"logreg C={c:g}", LogisticRegression(C=c, max_iter=1000), full[layer]) for c in args.C]
        if args.mlp:
            mlp = MLPClassifier((256,), alpha=0.01, early_stopping=True, random_state=args.seed, max_iter=200)
            classifiers.append(("mlp", mlp, full[layer]))
        for name, clf, (A, B) in (*classifiers, ("knn15", KNeighborsClassifier(15), (z_tr[i], z_te[i]))):
            t0 = time.perf_counter()
            pred = clf.fit(A, y[train]).predict(B)
            rows.append(score(layer, name, pred, time.perf_counter() - t0))
    if args.model:
        from scmamba import SCMAMBA

        t0 = time.perf_counter()
        ref, query = mdata[train].copy(), mdata[test].copy()
        model = SCMAMBA.load(args.model, ref)
        z_ref = model.get_latent_representation(ref, modality="rna")
        z_query = model.get_latent_representation(query, modality=kind)
        pred = KNeighborsClassifier(15).fit(z_ref, y[train]).predict(z_query)
        rows.append(score(kind, f"scmamba rna->{kind} knn15", pred, time.perf_counter() - t0))
    result = {
        "data": Path(args.data).stem, "n_train": len(train), "n_test": len(test),
        "type_oracle_foscttm": round(type_oracle_foscttm(y[test]), 4), "rows": rows,
    }  # fmt: skip
    best = [max((r for r in rows if r["layer"] == layer and r["classifier"].startswith("logreg")),
                key=lambda r: r["acc"]) for layer in ("rna", kind)]  # fmt: skip
    result["best_logreg_acc"] = {r["layer"]: r["acc"] for r in best}
    print(markdown_table(rows, ["layer", "classifier", "acc", "macro_f1", "acc_coarse", "wall_s"]))
    if args.match:
        groups = obs[args.batch_key].astype(str).to_numpy()[test] if args.batch_key in obs else None
        result["match"] = match_oracles(z_tr, z_te, full["rna"][0], full["rna"][1], groups, args.seed)
        print("supervised cross-modal match, held-out FOSCTTM:")
        print(markdown_table(result["match"], list(result["match"][0])))
    shown = [*best, *(r for r in rows if r["classifier"].startswith(("knn15", "scmamba")))]
    n_type = {t: int((y[test] == t).sum()) for t in types}
    recall_rows = [{"cell_type": t, "n": n_type[t], **{f"{r['layer']} {r['classifier']}": r["recall"][t]
                                                       for r in shown}} for t in types]  # fmt: skip
    print("recall per held-out cell type:")
    print(markdown_table(sorted(recall_rows, key=lambda r: -r["n"]), list(recall_rows[0])))
    print(f"best logistic-regression accuracy per layer (optimistic): {result['best_logreg_acc']}")
    print(f"type-oracle FOSCTTM on the {len(test)} held-out cells: {result['type_oracle_foscttm']}")
    out = Path(args.out) if args.out else RESULTS / f"ceiling_{Path(args.data).stem}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
