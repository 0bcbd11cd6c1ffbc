"""The results page: the latest result of every method in ``benchmarks/results/``, as one Markdown page.

Usage::

    python -m benchmarks.report                    # print the page
    python -m benchmarks.report --out results.md   # write it (the docs build writes docs/results.md this way)

Which result counts as the latest: for each benchmark, data set and method (and, for label transfer, query and
classifier), the row of the newest run (``meta.date``) made at the package defaults of its day: not ``--quick``, no
SCMAMBA keywords, and not a run of a prototype, of GLUE or of the paired third alone (file names with one of
:data:`NOT_DEFAULT_RUNS`); a run with seed 0 comes before runs with other seeds. Each row says the date (and a seed
other than 0) of its run, so rows from before a change of the defaults read as such. The regime table comes from the
newest ``regime*.jsonl`` (means over its seeds).
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = {
    "snareseq_mouse_cortex_chen2019": "SNARE-seq mouse cortex (RNA + ATAC, 10,309 cells)",
    "abseq_bonemarrow_triana2021": "Abseq bone marrow (RNA + protein, 9,663 cells, 6 donors)",
}
#: File-name parts of runs that are not the package at its defaults (prototypes, GLUE alone, the paired third alone,
#: the adversary off before it was on by default).
NOT_DEFAULT_RUNS = ("proto", "mnn", "glue", "paired_only", "lambda_adv0", "undertrained")


@dataclass(frozen=True)
class Section:
    """One benchmark: its file prefix, title, command, row key and columns (result key -> header)."""

    prefix: str
    title: str
    command: str
    key: tuple[str, ...]
    columns: dict[str, str]
    split: str | None = None


SECTIONS = [
    Section(
        "allcells",
        "All cells (the users' protocol)",
        "python -m benchmarks.allcells --data <file>",
        ("method",),
        {
            "ARI": "Leiden ARI",
            "NMI": "Leiden NMI",
            "scib_bio_conservation": "scib Bio",
            "scib_batch_correction": "scib Batch",
            "scib_total": "scib Total",
            "FOSCTTM": "FOSCTTM",
            "epochs": "epochs",
        },
    ),
    Section(
        "integration",
        "Held-out cells (trained on 80%, scored on the other 20%)",
        "python -m benchmarks.integration --data <file>",
        ("method",),
        {"ARI": "ARI", "NMI": "NMI", "FOSCTTM": "FOSCTTM", "label_acc": "RNA->other acc", "label_f1": "macro-F1"},
        split="heldout",
    ),
    Section(
        "transfer",
        "Label transfer to new donors / libraries",
        "python -m benchmarks.transfer --data <file>",
        ("method", "query", "ref_rep", "classifier"),
        {"accuracy": "accuracy", "macro_f1": "macro-F1"},
    ),
    Section(
        "mosaic",
        "Mosaic data (paired, RNA-only and other-only thirds)",
        "python -m benchmarks.mosaic --data <file>",
        ("method",),
        {"transfer_acc": "RNA-only -> other-only acc", "transfer_f1": "macro-F1", "foscttm": "FOSCTTM unpaired"},
    ),
    Section(
        "scaling",
        "Training and embedding cost on synthetic data of full width (CPU)",
        "python -m benchmarks.scaling",
        ("method", "n_cells", "n_genes", "n_peaks", "threads"),
        {"train_cells_per_s": "train cells/s", "embed_cells_per_s": "embed cells/s", "peak_rss_gb": "peak RSS GiB"},
    ),
]
#: Benchmarks whose files are not per data set (``<prefix>*.json``).
SYNTHETIC = {"scaling"}


def _is_default_run(path: Path, meta: dict) -> bool:
    kwargs = meta.get("scmamba_kwargs")
    if isinstance(kwargs, str):
        kwargs = json.loads(kwargs) if kwargs.strip() else None
    return not meta.get("quick") and not kwargs and not any(part in path.stem for part in NOT_DEFAULT_RUNS)


def latest_rows(section: Section, stem: str, results: Path = RESULTS) -> list[dict]:
    """For each row key, the row of the newest default run of ``section`` on data set ``stem``."""
    best: dict[tuple, dict] = {}
    pattern = f"{section.prefix}*.json" if section.prefix in SYNTHETIC else f"{section.prefix}_{stem}*.json"
    for path in sorted(results.glob(pattern)):
        data = json.loads(path.read_text())
        meta = data.get("meta", {}) if isinstance(data, dict) else {}
        if not meta.get("date") or not _is_default_run(path, meta):
            continue
        seed = meta.get("seed", 0)
        rank = (seed == 0, meta["date"])
        run = meta["date"][:10] + (f" (seed {seed})" if seed else "")
        for row in data.get("rows", []):
            if row.get("status", "ok") != "ok" or (section.split and row.get("split") != section.split):
                continue
            key = tuple(row.get(k) for k in section.key)
            if key not in best or rank >= best[key]["_rank"]:
                best[key] = {**row, "_rank": rank, "_run": run, "_file": path.name}
    rows = list(best.values())
    if section.prefix in SYNTHETIC:  # sizes differ between runs: each method's rows of its newest run only
        newest = {}
        for r in rows:
            newest[r["method"]] = max(newest.get(r["method"], r["_rank"]), r["_rank"])
        rows = [r for r in rows if r["_rank"] == newest[r["method"]]]
    return sorted(
        rows, key=lambda r: tuple(r.get(k) if isinstance(r.get(k), int) else str(r.get(k)) for k in section.key)
    )


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def section_markdown(section: Section, results: Path = RESULTS) -> str:
    """The section's tables, one per data set, with the files the rows come from."""
    out = [f"## {section.title}", "", f"`{section.command}`", ""]
    datasets = {"": "Genes and peaks resampled from SNARE-seq"} if section.prefix in SYNTHETIC else DATASETS
    for stem, name in datasets.items():
        rows = latest_rows(section, stem, results)
        if not rows:
            continue
        head = [*section.key, *section.columns.values(), "run"]
        out += [f"**{name}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [_fmt(r.get(k)) for k in (*section.key, *section.columns)] + [r["_run"]]
            out.append("| " + " | ".join(cells) + " |")
        files = sorted({r["_file"] for r in rows})
        out += ["", "From " + ", ".join(f"`{f}`" for f in files) + ".", ""]
    return "\n".join(out)


def latest_regime_file(results: Path = RESULTS) -> Path | None:
    """``regime.jsonl`` (the default output of a run in progress or just finished), else the newest dated one."""
    if (results / "regime.jsonl").exists():
        return results / "regime.jsonl"
    dated = [p for p in results.glob("regime_*.jsonl") if re.fullmatch(r"regime_\d{4}-\d{2}-\d{2}", p.stem)]
    return max(dated, default=None, key=lambda p: p.stem)


def regime_markdown(results: Path = RESULTS) -> str:
    """The regime table (means over seeds) of :func:`latest_regime_file`."""
    from benchmarks.regime import CURRENT_TAG, markdown, table

    path = latest_regime_file(results)
    if path is None:
        return ""
    return "\n".join([
        "## Data regimes: sizes, feature panels, seeds (current defaults)",
        "",
        "`python -m benchmarks.regime` (each set subsampled to 500 / 1,000 / 2,500 / all cells, all features or a "
        "random panel, with its batches). Leiden best ARI / NMI, means over seeds; scib Total not min-max scaled.",
        "",
        markdown(table(path), CURRENT_TAG),
        "",
        f"From `{path.name}`.",
        "",
    ])  # fmt: skip


def page(results: Path = RESULTS) -> str:
    """The whole results page (Markdown)."""
    parts = [
        "# Benchmark results",
        "",
        "SCMAMBA next to scvi-tools' MULTIVI and TOTALVI, Harmony, WNN and RNA PCA on the same cells. This page is "
        "generated from the result files in `benchmarks/results/` when the documentation is built "
        "(`python -m benchmarks.report`): every row is the newest run of that method at the package defaults of "
        "its day, and says the day. How each script runs, its options and columns: `benchmarks/README.md`.",
        "",
        regime_markdown(results),
    ]  # fmt: skip
    parts += [section_markdown(s, results) for s in SECTIONS]
    return "\n".join(parts).rstrip() + "\n"


def main(argv=None) -> None:
    """Print the page, or write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of result files")
    parser.add_argument("--out", type=Path, default=None, help="write the page here instead of printing it")
    args = parser.parse_args(argv)
    text = page(args.results)
    if args.out is None:
        print(text)
    else:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
