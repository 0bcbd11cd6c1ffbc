"""How much cell-type information each layer carries on the held-out split: supervised and unsupervised ceilings.

On the 80/20 split of ``holdout.py`` / ``ablation.py`` (seed 0), classifiers are fitted on the 80% reference cells
**with their labels** and predict the held-out cells' ``cell_type`` from one layer only:

``logreg``    logistic regression on all features (RNA: normalize-total + log1p; ATAC: binarised TF-IDF with the
              inverse document frequency of the reference cells) at inverse regularisation strengths ``--C``; the
              best of them (chosen on the held-out cells, so an optimistic figure) is the supervised ceiling of a
              linear read-out;
``mlp``       with ``--mlp``: a one-hidden-layer (256) network on the same features (alpha 0.01, early stopping),
              a non-linear supervised read-out (slow: ~12 min per layer on one thread);
``knn15``     a 15-NN classifier on a 50-component PCA (RNA) / LSI (ATAC; first component dropped), fitted on
              reference cells: what an unsupervised per-layer embedding gives to the same classifier as the
              integration benchmarks use.

It also prints ``type_oracle_foscttm``: the FOSCTTM of embeddings that put every cell exactly on its cell type and
are random within it (sum over types of n_k (n_k - 1) / 2, over N (N - 1)). An integration whose cross-modal
label accuracy is far below 1 cannot reach it; below it needs within-type matching.

A label-transfer accuracy from an integrated embedding (RNA reference -> other-layer query) above the other layer's
own supervised ceiling is not expected: the query side has only that layer's information.

Usage::

    python benchmarks/ceiling.py --data ../shared/data/snareseq_mouse_cortex_chen2019.h5mu
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, markdown_table
from holdout import _other_mod, _split
from integration import LayerReducer


def type_oracle_foscttm(labels: np.ndarray) -> float:
    """FOSCTTM of embeddings exact on cell type and random within it."""
    _, counts = np.unique(labels, return_counts=True)
    n = len(labels)
    return float((counts * (counts - 1) / 2).sum() / (n * (n - 1)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" /
                                              "snareseq_mouse_cortex_chen2019.h5mu"))  # fmt: skip
    parser.add_argument("--label-key", default="cell_type")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--C", type=float, nargs="+", default=[0.03, 0.1, 0.3, 1.0, 3.0])
    parser.add_argument("--mlp", action="store_true", help="also fit the (slow) supervised MLP read-out")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import mudata as md
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    md.set_options(pull_on_update=False)
    mdata = md.read_h5mu(args.data)
    other, kind = _other_mod(mdata)
    obs = mdata.obs if args.label_key in mdata.obs else mdata["rna"].obs
    y = obs[args.label_key].astype(str).to_numpy()
    train, test = _split(mdata.n_obs, args.seed)
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
    rows = []
    for i, layer in enumerate(("rna", kind)):
        classifiers = [(f"logreg C={c:g}", LogisticRegression(C=c, max_iter=1000), full[layer]) for c in args.C]
        if args.mlp:
            mlp = MLPClassifier((256,), alpha=0.01, early_stopping=True, random_state=args.seed, max_iter=200)
            classifiers.append(("mlp", mlp, full[layer]))
        for name, clf, (A, B) in (*classifiers, ("knn15", KNeighborsClassifier(15), (z_tr[i], z_te[i]))):
            t0 = time.perf_counter()
            pred = clf.fit(A, y[train]).predict(B)
            rows.append({
                "layer": layer, "classifier": name, "acc": round(float((pred == y[test]).mean()), 4),
                "macro_f1": round(float(f1_score(y[test], pred, average="macro")), 4),
                "wall_s": round(time.perf_counter() - t0, 1),
            })  # fmt: skip
    result = {
        "data": Path(args.data).stem, "n_train": len(train), "n_test": len(test),
        "type_oracle_foscttm": round(type_oracle_foscttm(y[test]), 4), "rows": rows,
    }  # fmt: skip
    result["best_logreg_acc"] = {
        layer: max(r["acc"] for r in rows if r["layer"] == layer and r["classifier"].startswith("logreg"))
        for layer in ("rna", kind)
    }
    print(markdown_table(rows, ["layer", "classifier", "acc", "macro_f1", "wall_s"]))
    print(f"best logistic-regression accuracy per layer (optimistic): {result['best_logreg_acc']}")
    print(f"type-oracle FOSCTTM on the {len(test)} held-out cells: {result['type_oracle_foscttm']}")
    out = Path(args.out) if args.out else RESULTS / f"ceiling_{Path(args.data).stem}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
