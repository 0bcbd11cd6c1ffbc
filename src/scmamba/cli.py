"""Command line: ``scmamba train INPUT.h5mu --out DIR`` and ``scmamba demo`` (thin layer over the Python API).

Both set up, train and embed with :class:`~scmamba.SCMAMBA`, score the embeddings with
:func:`scmamba.metrics.summarize_embeddings` and write the files listed in :data:`OUTPUTS` (also shown by
``scmamba train --help``). Results go to stdout; the progress bar and notes go to stderr.

Every user error (unreadable input, bad options, data the set-up refuses) ends in one line on stderr and exit
code 2; ``--debug`` shows the Python traceback instead. Other exceptions are bugs and show their traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
import warnings
from pathlib import Path

logger = logging.getLogger("scmamba")

#: What ``scmamba train`` and ``scmamba demo`` write to ``--out`` (the ``--help`` epilog).
OUTPUTS = """\
files written to --out:
  model/         the trained model: SCMAMBA.load(out / "model", mdata)
  embedded.h5mu  the input MuData with obsm X_scmamba (joint), X_scmamba_rna, X_scmamba_<atac|protein> (NaN rows:
                 cells not measured in that layer), obsm X_umap (UMAP of X_scmamba), obs scmamba_layers (layers
                 each cell was embedded from), obs scmamba_leiden (Leiden clusters of X_scmamba at the resolution
                 of the best ARI, with labels), uns scmamba_summary (the numbers of summary.json)
  umap.png       the UMAP coloured by the label and batch columns
  summary.json   cells; layers (cells per measured set of layers); features per layer; epochs; train_seconds;
                 foscttm_rna_vs_<layer> (fraction of cells closer than the true partner, on cells measured in
                 both layers: 0 is perfect, 0.5 random); label_knn_agreement_rna_to_<layer> (a cell's label from
                 its 15 nearest RNA embeddings of the other layer's embedding); leiden_ari_joint, leiden_nmi_joint,
                 leiden_ari_rna_pca, leiden_nmi_rna_pca (best over Leiden resolutions 0.1-2.0, against the
                 labels, for X_scmamba and a 30-component RNA PCA). A score that cannot be computed is left out
                 with a note on stderr; label scores need --label-key's column."""

#: Exceptions that report a problem with the user's input or options, which the user can fix: the API's
#: ``ValueError`` (every check of the data and arguments raises one, with what to fix) and the CLI's own
#: :class:`UsageError`. Anything else (``TypeError``, ``KeyError``, ``OSError`` from inside the package) is a bug
#: and shows its traceback.
USER_ERRORS = (ValueError,)


class UsageError(Exception):
    """A problem with the command line or its input, reported in one line."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in ``--help``; options whose default is ``None`` say in their help what that means."""

    def _fill_text(self, text, width, indent):
        if text == OUTPUTS:  # a table laid out by hand
            return text
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action):
        if action.default is None or action.required:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (exit code 2, as argparse) and defaults in ``--help``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        """Print ``PROG: error: MESSAGE`` on one line and exit with code 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"is not valid JSON ({err.msg} at character {err.pos}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"d_model\": 128}}', got {text!r}")
    return value


def _check_model_kwargs(kwargs: dict) -> None:
    import inspect

    from . import SCMAMBA

    known = [p for p in inspect.signature(SCMAMBA.__init__).parameters if p not in ("self", "mdata")]
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise UsageError(f"--model-kwargs: unknown SCMAMBA keyword(s) {unknown}; known: {', '.join(known)}.")


def read_mudata(path: Path):
    """Read a ``.h5mu`` file, with a one-line error for anything that is not a MuData file."""
    import h5py
    import mudata as md

    if not path.exists():
        raise UsageError(f"{path} does not exist.")
    try:
        if path.is_dir() or not h5py.is_hdf5(path):
            raise UsageError(f"{path} is not an HDF5 file (a .h5mu MuData is expected).")
        with h5py.File(path, "r") as f:
            is_mudata = "mod" in f
    except OSError as err:  # unreadable (permissions, a damaged file): the user's file, not a bug
        raise UsageError(f"{path} cannot be read: {err}.") from None
    if not is_mudata:
        raise UsageError(
            f"{path} is an AnnData (.h5ad) file: one modality. scmamba train needs a .h5mu MuData with paired "
            "modalities, e.g. mudata.MuData({'rna': rna, 'atac': atac}).write_h5mu('paired.h5mu')."
        )
    try:
        return md.read_h5mu(path)
    except (OSError, KeyError) as err:  # an HDF5 file with a MuData group that mudata cannot read
        raise UsageError(f"{path} is not a readable MuData file ({type(err).__name__}: {err}).") from None


def _find_modalities(mdata, rna_mod: str | None, atac_mod: str | None, protein_mod: str | None) -> tuple[str, str, str]:
    """``(rna modality, other modality, other kind)`` from the options or the usual modality names."""
    from ._constants import find_modality

    available = list(mdata.mod)
    for option, name in (("--rna-mod", rna_mod), ("--atac-mod", atac_mod), ("--protein-mod", protein_mod)):
        if name is not None and name not in mdata.mod:
            raise UsageError(f"{option}: the MuData has no modality {name!r}; it has {available}.")
    rna = rna_mod or find_modality(mdata.mod, "rna")
    if atac_mod is not None and protein_mod is not None:  # the one rule of setup_mudata and paper_config
        from .model._modalities import check_two_layers

        check_two_layers(["rna", "atac", "protein"], {"rna": rna or "rna", "atac": atac_mod, "protein": protein_mod})
    if rna is None:
        raise UsageError(f"no RNA modality among {available}; name it with --rna-mod.")
    if atac_mod is not None or protein_mod is not None:
        return (rna, atac_mod, "atac") if atac_mod is not None else (rna, protein_mod, "protein")
    found = {kind: find_modality(mdata.mod, kind, exclude=[rna]) for kind in ("atac", "protein")}
    found = {kind: name for kind, name in found.items() if name is not None}
    if found:
        kind, name = next(iter(found.items()))
        if len(found) > 1:
            other_kind, other = list(found.items())[1]
            print(
                f"scmamba: note: pairing {rna!r} with {name!r} ({kind}); {other!r} ({other_kind}) is not used: "
                f"SCMAMBA aligns two layers (--{other_kind}-mod {other} pairs RNA with it instead).",
                file=sys.stderr,
                flush=True,
            )
        return rna, name, kind
    raise UsageError(f"no ATAC or protein modality among {available}; name it with --atac-mod or --protein-mod.")


def _obs_location(mdata, key: str, mods: list[str]) -> str | bool | None:
    """Where an obs column lives: ``None`` for ``mdata.obs``, a modality name, or ``False`` when nowhere."""
    if key in mdata.obs:
        return None
    return next((mod for mod in mods if key in mdata.mod[mod].obs), False)


def _obs_column(mdata, key: str, mod: str | None):
    """An obs column as values in ``mdata.obs_names`` order (a modality's rows are matched by name)."""
    if mod is None:
        return mdata.obs[key].to_numpy()
    return mdata.mod[mod].obs[key].reindex(mdata.obs_names).to_numpy()


def run_training(
    mdata,
    out: Path,
    *,
    epochs: int | None,
    batch_key: str | None,
    label_key: str | None,
    model_kwargs: dict | None = None,
    seed: int = 0,
    rna_mod: str | None = None,
    atac_mod: str | None = None,
    protein_mod: str | None = None,
    layers: dict[str, str | None] | None = None,
    rna_annotation: str | None = None,
) -> dict:
    """Set up, train, embed, save and report; returns the summary that is also written to ``out/summary.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import pandas as pd
    import scvi

    from . import SCMAMBA
    from ._constants import LATENT_KEY
    from .metrics import summarize_embeddings

    scvi.settings.seed = seed
    rna, other, kind = _find_modalities(mdata, rna_mod, atac_mod, protein_mod)
    modalities = {"rna_layer": rna, f"{kind}_layer": other}
    if batch_key is not None:
        where = _obs_location(mdata, batch_key, [rna, other])
        if where is False:
            raise UsageError(
                f"--batch-key {batch_key!r} is not a column of mdata.obs ({list(mdata.obs.columns)}) nor of "
                f"mdata.mod[{rna!r}].obs ({list(mdata.mod[rna].obs.columns)}) or mdata.mod[{other!r}].obs "
                f"({list(mdata.mod[other].obs.columns)})."
            )
        if where is not None:
            modalities["batch_key"] = where
    label_where = _obs_location(mdata, label_key, [rna, other]) if label_key is not None else False
    if label_key is not None and label_where is False:
        print(
            f"scmamba: note: label column {label_key!r} is not in mdata.obs nor in a modality's obs; the label "
            "agreement report is skipped (--label-key names it).",
            file=sys.stderr,
            flush=True,
        )
    layers = layers or {}
    SCMAMBA.setup_mudata(
        mdata,
        batch_key=batch_key,
        rna_annotation=rna_annotation,
        modalities=modalities,
        **{f"{m}_layer": layers.get(m) for m in ("rna", kind)},
    )
    model = SCMAMBA(mdata, **(model_kwargs or {}))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out {out}: cannot create the folder ({err.strerror or err}).") from None
    print(model, flush=True)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the progress bar goes to stderr; stdout carries the results
        model.train(max_epochs=epochs)
    epochs = int(model.trainer.current_epoch)  # the passes run (SCMAMBA.train's default when none were given)
    train_s = time.perf_counter() - t0

    # the work is saved first: a report that fails cannot lose the trained model or its embeddings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".* were not measured in .*: their rows are NaN")
        z_rna = model.get_latent_representation(modality="rna")  # NaN rows: cells without that layer (mosaic)
        z_other = model.get_latent_representation(modality=kind)
    mdata.obsm[LATENT_KEY] = model.get_latent_representation()
    mdata.obsm[f"{LATENT_KEY}_rna"] = z_rna
    mdata.obsm[f"{LATENT_KEY}_{kind}"] = z_other
    layers_used = model.get_latent_layers()
    mdata.obs["scmamba_layers"] = layers_used.astype(str).to_numpy()
    model.save(str(out / "model"), overwrite=True)
    mdata.write_h5mu(out / "embedded.h5mu")

    labels = None
    if label_key is not None and label_where is not False:
        labels = _obs_column(mdata, label_key, label_where)
    has_rna = np.isfinite(z_rna).all(1)
    result = summarize_embeddings(
        mdata.obsm[LATENT_KEY], z_rna, z_other, other_name=kind, labels=labels,
        rna_counts=mdata.mod[rna][mdata.obs_names[has_rna]], rna_layer=layers.get("rna"), seed=seed,
    )  # fmt: skip
    for note in result.notes:
        print(f"scmamba: note: {note}", file=sys.stderr, flush=True)
    summary = {
        "cells": int(mdata.n_obs),
        "layers": {str(k): int(v) for k, v in layers_used.value_counts().items() if v},
        "features": {m: int(mdata.mod[name].n_vars) for m, name in model.modality_mods_.items()},
        "epochs": epochs,
        "train_seconds": round(train_s, 1),
        **result.scores,
    }
    # the results behind the numbers go into embedded.h5mu beside the embeddings
    written = [f"obsm {LATENT_KEY}*", "obs['scmamba_layers']"]
    if result.leiden is not None:
        mdata.obs["scmamba_leiden"] = pd.Categorical(result.leiden)
        written.append("obs['scmamba_leiden']")
    if result.umap is not None:
        mdata.obsm["X_umap"] = result.umap
        written.append("obsm['X_umap']")
    mdata.uns["scmamba_summary"] = summary
    mdata.write_h5mu(out / "embedded.h5mu")
    print(f"Wrote {out / 'model'}/ and {out / 'embedded.h5mu'} ({', '.join(written)}, uns['scmamba_summary']).")
    if "leiden_ari_joint" in summary:
        cells = "" if has_rna.all() else f" on the {int(has_rna.sum()):,} cells measured in RNA"
        print(f"Leiden clustering vs {label_key!r} (best over resolutions 0.1-2.0){cells}:", flush=True)
        for name, key in ((LATENT_KEY, "joint"), ("RNA PCA", "rna_pca")):
            if f"leiden_ari_{key}" in summary:
                ari, nmi = summary[f"leiden_ari_{key}"], summary[f"leiden_nmi_{key}"]
                print(f"  {name:<10} ARI {ari:.3f}  NMI {nmi:.3f}", flush=True)
    if result.umap is not None:
        _plot_umap(mdata, out / "umap.png", [k for k in (label_key, batch_key) if k is not None], seed)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"Wrote {out / 'summary.json'}" + (f", {out / 'umap.png'}" if (out / "umap.png").exists() else ""))
    return summary


def _plot_umap(mdata, path: Path, keys: list[str], seed: int) -> None:
    """The joint embedding's UMAP (``obsm['X_umap']``) coloured by the label and batch columns found."""
    import numpy as np
    import scanpy as sc

    cells = sc.AnnData(obs=mdata.obs[[]].copy(), obsm={"X_umap": np.asarray(mdata.obsm["X_umap"])})
    mods = list(mdata.mod)
    for key in keys:
        where = _obs_location(mdata, key, mods)
        if where is not False and key not in cells.obs:
            cells.obs[key] = _obs_column(mdata, key, where)
    color = [k for k in keys if k in cells.obs] or None
    fig = sc.pl.umap(cells, color=color, show=False, return_fig=True, wspace=0.6)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def _version() -> str:
    from . import __version__  # the package's __init__ imports nothing heavy: --help and --version stay fast

    return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``scmamba`` argument parser."""
    parser = _Parser(prog="scmamba", description="Paired single-cell multi-omics integration.")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks instead of one-line errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser(
        "train",
        help="train on a paired .h5mu and write embeddings, model and UMAP",
        description="Train SCMAMBA on a paired .h5mu (cells matched across modalities by obs_names) and write "
        "embeddings (embedded.h5mu), the model, a UMAP and a summary of scores to --out.",
        epilog=OUTPUTS,
    )
    train.add_argument("input", type=Path, help=".h5mu with raw counts: an RNA modality and an ATAC or protein one")
    train.add_argument("--out", type=Path, required=True, help="output folder")
    train.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="training epochs; none: SCMAMBA.train's, one per 50 cells, 10-50",
    )
    train.add_argument(
        "--batch-key", default=None, help="obs column of batches, in mdata.obs or a modality's obs (default: none)"
    )
    train.add_argument(
        "--label-key", default="cell_type", help="obs column of labels for the agreement report (mdata or modality)"
    )
    data = train.add_argument_group(
        "modalities and layers (default: the usual modality names, as SCMAMBA.setup_mudata infers them; counts in .X)"
    )
    data.add_argument("--rna-mod", default=None, help="RNA modality name (default: rna, gex, ... if present)")
    data.add_argument("--atac-mod", default=None, help="ATAC modality name (default: atac, peaks, ... if present)")
    data.add_argument("--protein-mod", default=None, help="protein modality name (default: prot, adt, ... if present)")
    data.add_argument("--rna-layer", default=None, help="layer of the RNA modality with raw counts (default: .X)")
    data.add_argument("--atac-layer", default=None, help="layer of the ATAC modality with counts (default: .X)")
    data.add_argument("--protein-layer", default=None, help="layer of the protein modality with counts (default: .X)")
    data.add_argument(
        "--rna-annotation",
        default=None,
        help="gene coordinates if var has none: GRCh38, GRCh37, GRCm38 or a table/GTF (default: from var)",
    )
    train.add_argument(
        "--model-kwargs", type=_json_object, default={}, help="JSON of SCMAMBA keywords, e.g. '{\"d_model\": 128}'"
    )
    train.add_argument("--seed", type=int, default=0, help="random seed")
    train.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    demo = sub.add_parser(
        "demo",
        help="train on the shipped SNARE-seq demo subset (2,500 cells, CPU, minutes)",
        description="scmamba train on the shipped SNARE-seq demo subset (batch 'batch', labels 'cell_type').",
        epilog=OUTPUTS,
    )
    demo.add_argument("--out", type=Path, default=Path("scmamba_demo"), help="output folder")
    demo.add_argument(
        "--epochs", type=_positive_int, default=None, help="training epochs (default: SCMAMBA.train's, 50 here)"
    )
    return parser


def _run(args) -> int:
    import mudata as md

    md.set_options(pull_on_update=False)
    if args.command == "demo":
        from .datasets import snareseq_cortex_demo

        run_training(snareseq_cortex_demo(), args.out, epochs=args.epochs, batch_key="batch", label_key="cell_type")
        return 0
    _check_model_kwargs(args.model_kwargs)
    mdata = read_mudata(args.input)
    run_training(
        mdata,
        args.out,
        epochs=args.epochs,
        batch_key=args.batch_key,
        label_key=args.label_key,
        model_kwargs=args.model_kwargs,
        seed=args.seed,
        rna_mod=args.rna_mod,
        atac_mod=args.atac_mod,
        protein_mod=args.protein_mod,
        layers={"rna": args.rna_layer, "atac": args.atac_layer, "protein": args.protein_layer},
        rna_annotation=args.rna_annotation,
    )
    return 0


def _one_line(err: BaseException) -> str:
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(text.split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``scmamba`` command; returns the exit code (2 for user errors)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return _run(args)
    except (UsageError, *USER_ERRORS) as err:
        if args.debug:
            raise
        print(f"scmamba {args.command}: error: {_one_line(err)}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
