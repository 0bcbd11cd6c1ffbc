"""Smoke tests of the benchmark scripts in their ``--quick`` modes on the real data sets.

Each script runs as a subprocess, as a user runs it from the repository root (``python -m benchmarks.<script>``;
here the root is put on ``PYTHONPATH`` so that the subprocess can run in ``tmp_path``), and writes to ``tmp_path``;
the tests check that the JSON / CSV / PNG outputs exist, hold every method and metric column, and that the values
lie in valid ranges.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import shared_file

ROOT = Path(__file__).resolve().parents[1]

DATASETS = {
    "abseq": ("abseq_bonemarrow_triana2021.h5mu", ["scmamba", "totalvi", "pca_lsi_harmony", "wnn"]),
    "snareseq": (
        "snareseq_mouse_cortex_chen2019.h5mu",
        ["scmamba", "multivi", "multivi_hvg", "pca_lsi_harmony", "wnn"],
    ),
}
UNIT_METRICS = ["NMI", "MAP", "cASW", "OEMS", "SAS", "GC", "oASW", "FOSCTTM", "matching_score", "label_acc", "label_f1"]
SCORES = ["S_bio", "S_omics", "overall"]
COST = ["train_s", "train_cells_per_s", "embed_s", "embed_cells_per_s", "peak_rss_train_gb", "peak_rss_embed_gb"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(script: str, args: list[str], cwd: Path, timeout: int) -> str:
    """``python -m benchmarks.<script stem> ARGS`` in ``cwd``; returns its stdout."""
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{Path(script).stem}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,  # any stray logs of the trainers land in tmp_path, not in the checkout
        env={**os.environ, "PYTHONPATH": pythonpath},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def _is_png(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_MAGIC


def _last_table(stdout: str) -> list[str]:
    lines = stdout.strip().splitlines()
    table = []
    for line in reversed(lines):
        if not line.startswith("|"):
            break
        table.insert(0, line)
    return table


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(DATASETS))
def test_integration_quick(dataset, tmp_path):
    file_name, methods = DATASETS[dataset]
    data = shared_file(file_name)
    stdout = _run("integration.py", ["--data", str(data), "--quick", "--out", str(tmp_path)], tmp_path, timeout=900)
    stem = data.stem
    json_path, csv_path = tmp_path / f"integration_{stem}.json", tmp_path / f"integration_{stem}.csv"
    assert json_path.exists() and csv_path.exists()
    assert _is_png(tmp_path / f"integration_{stem}_umap.png")
    assert _is_png(tmp_path / f"integration_{stem}_metrics.png")

    # the Markdown table is printed last: header, separator, one row per method and split
    table = _last_table(stdout)
    assert table[0].startswith("| method | split |") and len(table) == 2 + 2 * len(methods)

    result = json.loads(json_path.read_text())
    assert result["meta"]["quick"] and result["meta"]["n_heldout"] > 0
    rows = result["rows"]
    assert {(r["method"], r["split"]) for r in rows} == {(m, s) for m in methods for s in ("heldout", "train")}
    csv = pd.read_csv(csv_path)
    assert len(csv) == len(rows)
    for col in ["ARI", *UNIT_METRICS, *SCORES, *COST, "epochs", "latent", "note"]:
        assert col in csv.columns, col

    for r in rows:
        assert r["status"] == "ok", (r["method"], r.get("note"))
        assert r["train_s"] > 0 and r["train_cells_per_s"] > 0 and r["embed_cells_per_s"] > 0
        assert 0 < r["peak_rss_train_gb"] < 64 and 0 < r["peak_rss_embed_gb"] < 64
        if r["method"] == "wnn":  # graph only: ARI/NMI on the held-out cells, everything else n/a
            if r["split"] == "heldout":
                assert -1 <= r["ARI"] <= 1 and 0 <= r["NMI"] <= 1
            assert all(r[c] is None for c in ["MAP", "FOSCTTM", "label_acc", *SCORES])
            continue
        assert -1 <= r["ARI"] <= 1
        for col in UNIT_METRICS + SCORES:
            assert r[col] is not None and 0 <= r[col] <= 1 + 1e-9, (r["method"], r["split"], col, r[col])
        if r["method"] in ("scmamba", "multivi", "multivi_hvg"):
            assert r["epochs"] == 2  # --quick trains the deep models for 2 epochs
    totalvi = [r for r in rows if r["method"] == "totalvi"]
    for r in totalvi:  # one joint latent used for both layers, and said so
        assert r["FOSCTTM"] == 0 and r["latent"].startswith("joint")
    # overall scores are min-max scaled across the methods, so each metric's best method gets 1 on that metric
    for split in ("heldout", "train"):
        full = [r for r in rows if r["split"] == split and r["method"] != "wnn"]
        assert all(math.isclose(r["overall"], 0.6 * r["S_bio"] + 0.4 * r["S_omics"]) for r in full)


#: ``allcells.py --quick`` methods per data set: every method is covered once, SCMAMBA and the baseline on both;
#: fewer than the defaults because each child and the scib metrics' numba/jax compilation cost minutes on 2 cores.
ALLCELLS_METHODS = {
    "abseq": ["scmamba", "totalvi", "wnn", "unintegrated"],
    "snareseq": ["scmamba", "multivi", "pca_lsi_harmony", "unintegrated"],
}
PER_LAYER = {"scmamba", "multivi", "pca_lsi_harmony"}  # methods with per-layer embeddings, hence a FOSCTTM
SCIB_AGGREGATES = ["scib_bio_conservation", "scib_batch_correction", "scib_total"]
#: Early stopping of the peers' ``train()`` in scvi-tools 1.4.2: (monitored metric, patience).
PEER_STOPPING = {"multivi": ("reconstruction_loss_validation", 50), "totalvi": ("elbo_validation", 45)}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(ALLCELLS_METHODS))
def test_allcells_quick(dataset, tmp_path):
    data = shared_file(DATASETS[dataset][0])
    methods = ALLCELLS_METHODS[dataset]
    args = ["--data", str(data), "--quick", "--methods", *methods, "--threads", "1", "--out", str(tmp_path)]
    stdout = _run("allcells.py", args, tmp_path, timeout=1200)
    json_path, csv_path = tmp_path / f"allcells_{data.stem}.json", tmp_path / f"allcells_{data.stem}.csv"
    assert json_path.exists() and csv_path.exists()
    table = _last_table(stdout)  # the summary table is printed last: header, separator, one row per method
    assert table[0].startswith("| method | ARI | NMI | scib Bio | scib Batch | scib Total | FOSCTTM | epochs |")
    assert len(table) == 2 + len(methods)

    result = json.loads(json_path.read_text())
    assert result["meta"]["quick"] and result["meta"]["n_cells"] == 600
    rows = result["rows"]
    assert [r["method"] for r in rows] == methods
    scib_metrics = [c for c in rows[0] if c.startswith("scib_") and c not in SCIB_AGGREGATES and c != "scib_s"]
    assert len(scib_metrics) == 10  # scib-metrics' default BioConservation (5) and BatchCorrection (5) metrics
    for r in rows:
        assert r["status"] == "ok", (r["method"], r["note"])
        assert r["n_cells"] == 600 and r["train_s"] > 0 and 0 < r["peak_rss_gb"] < 64
        assert -1 <= r["ARI"] <= 1 and 0 <= r["NMI"] <= 1
        if r["method"] == "wnn":  # a graph: only the Leiden scores are defined
            assert all(r[c] is None for c in [*scib_metrics, *SCIB_AGGREGATES, "FOSCTTM"])
            continue
        for col in [*scib_metrics, *SCIB_AGGREGATES]:  # raw scores, not min-max scaled over the methods
            assert r[col] is not None and 0 <= r[col] <= 1, (r["method"], col, r[col])
        assert math.isclose(r["scib_total"], 0.6 * r["scib_bio_conservation"] + 0.4 * r["scib_batch_correction"])
        assert (r["FOSCTTM"] is not None and 0 <= r["FOSCTTM"] <= 1) == (r["method"] in PER_LAYER)
    base = rows[methods.index("unintegrated")]
    assert base["scib_batch_correction"] is not None and abs(base["scib_pcr_comparison"]) < 1e-3  # X_pca vs itself

    children = result["children"]
    for method in {"scmamba", "multivi", "totalvi"} & set(methods):  # --quick: 2 epochs, history recorded
        rec = children[method]
        assert rec["epochs"] == rec["max_epochs"] == rec["trainer"]["max_epochs"] == 2
        assert len(rec["history"][rec["monitor"]]) == 2 and 1 <= rec["best_epoch"] <= 2
        assert rec["embed_s"] > 0 and rec["train_cells_per_s"] > 0
    for peer, stopping in PEER_STOPPING.items():
        if peer in children:  # the peers keep their shipped early stopping
            stop = children[peer]["trainer"]["early_stopping"]
            assert [(s["monitor"], s["patience"]) for s in stop] == [stopping]
            assert children[peer]["elbo_validation_final"] is not None

    csv = pd.read_csv(csv_path)  # the CSV holds the JSON rows
    assert list(csv["method"]) == methods
    for col in ["ARI", "NMI", "FOSCTTM", *scib_metrics, *SCIB_AGGREGATES, "train_s", "peak_rss_gb"]:
        for r, v in zip(rows, csv[col], strict=True):
            assert (r[col] is None and pd.isna(v)) or math.isclose(r[col], v, rel_tol=1e-9), (col, r[col], v)


@pytest.mark.slow
def test_scaling_quick(tmp_path):
    shared_file("snareseq_mouse_cortex_chen2019.h5mu")
    stdout = _run("scaling.py", ["--quick", "--max-steps", "3", "--out", str(tmp_path)], tmp_path, timeout=600)
    json_path, csv_path = tmp_path / "scaling_quick.json", tmp_path / "scaling_quick.csv"
    assert json_path.exists() and csv_path.exists() and _is_png(tmp_path / "scaling_quick.png")
    table = _last_table(stdout)
    assert table[0].startswith("| method | cells |") and len(table) == 2 + 4

    rows = json.loads(json_path.read_text())["rows"]
    assert {(r["method"], r["n_cells"]) for r in rows} == {(m, n) for m in ("scmamba", "multivi") for n in (1000, 2000)}
    csv = pd.read_csv(csv_path)
    for col in ["time_per_epoch_s", "train_cells_per_s", "peak_rss_gb", "input_nnz", "input_sparse_gb", "dense_gb"]:
        assert col in csv.columns, col
    for r in rows:
        assert r["status"] == "ok", r.get("error")
        assert r["n_genes"] == 2000 and r["n_peaks"] == 5000 and r["epochs"] == 1
        assert r["time_per_epoch_s"] > 0 and r["train_cells_per_s"] > 0 and 0 < r["peak_rss_gb"] < 64
        batch = 128  # both models' default minibatch; --max-steps 3 cuts each epoch to 3 minibatches
        assert r["cells_per_epoch"] == min(r["n_cells"], 3 * batch)
        # resampled real counts: sparse like SNARE-seq, and the input's nnz is what was generated
        assert 0 < r["rna_density"] < 0.5 and 0 < r["atac_density"] < 0.2
        assert r["input_nnz"] == r["rna_nnz"] + r["atac_nnz"] > 0
    nnz = {r["n_cells"]: r["input_nnz"] for r in rows}
    assert 1.5 < nnz[2000] / nnz[1000] < 2.5  # nnz grows with the cells (depths are drawn from real cells)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["abseq", "snareseq"])
def test_transfer_quick(dataset, tmp_path):
    data = shared_file(DATASETS[dataset][0])
    stdout = _run("transfer.py", ["--data", str(data), "--quick", "--out", str(tmp_path)], tmp_path, timeout=900)
    result = json.loads((tmp_path / f"transfer_{data.stem}_quick.json").read_text())
    rows = result["rows"]
    peer = "totalvi" if dataset == "abseq" else "multivi"
    single = ["rna only"] if dataset == "abseq" else ["rna only", "atac only"]
    expected = {
        ("scmamba", "paired", "joint"),
        ("scmamba", "paired, fine-tuned norms", "joint"),
        (peer, "paired", "joint"),
    }
    expected |= {("scmamba", q, rep) for q in single for rep in ("joint", "same modality")}
    if peer == "multivi":
        expected |= {("multivi", q, rep) for q in single for rep in ("joint", "same modality")}
    if dataset == "abseq":
        expected.add(("scmamba", "protein only", "joint"))
        expected.add(("scmamba", "protein only", "same modality"))
    assert {(r["method"], r["query"], r["ref_rep"]) for r in rows} == expected
    assert {r["classifier"] for r in rows} == {"15-NN", "MLP"}
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["macro_f1"] <= 1
    children = {c["method"]: c for c in result["children"]}
    # the split is by donor / library: no query batch is in the reference
    assert "Aged" in children["scmamba"]["protocol"] if dataset == "abseq" else "->" in children["scmamba"]["protocol"]
    assert _last_table(stdout)[0].startswith("| method | query |")


def test_reference_cv_quick(tmp_path):
    data = shared_file(DATASETS["abseq"][0])
    args = ["--data", str(data), "--quick", "--epochs", "1", "2", "--threads", "1", "--out", str(tmp_path)]
    stdout = _run("reference_cv.py", args, tmp_path, timeout=600)
    result = json.loads((tmp_path / f"reference_cv_{data.stem}_quick.json").read_text())
    rows = result["rows"]
    # every young (reference) donor is held out once per epoch count, and no aged (query) donor is used
    assert {(r["epochs"], r["held_out_batch"]) for r in rows} == {(e, d) for e in (1, 2) for d in ("BM1", "BM2", "BM3")}
    for r in rows:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["macro_f1"] <= 1 and r["n_train"] > r["n_query"] / 10
    assert [m["epochs"] for m in result["means"]] == [1, 2]
    assert _last_table(stdout)[0].replace(" ", "") == "|epochs|accuracy|macro_f1|"


def test_ssd_throughput_quick(tmp_path):
    stdout = _run("ssd_throughput.py", ["--quick", "--threads", "1", "--out", str(tmp_path)], tmp_path, timeout=300)
    result = json.loads((tmp_path / "ssd_throughput_quick.json").read_text())
    assert result["meta"]["matmul_gflops"] > 0
    chunked = [r for r in result["ssd"] if r["kernel"].startswith("ssd_chunked")]
    assert chunked and all(0 < r["fwd_fraction_of_matmul"] and r["fwd_bwd_ms"] > 0 for r in chunked)
    parts = {r["part"] for r in result["step"]}
    assert "tokenizer (sparse patch projection)" in parts and "whole module step (fwd+bwd, loss)" in parts
    assert "SSD scan" in stdout


def test_matmul_dtype_quick(tmp_path):
    args = ["--tokens", "512", "--repeats", "1", "--out", str(tmp_path)]
    stdout = _run("matmul_dtype.py", args, tmp_path, timeout=120)
    result = json.loads((tmp_path / "matmul_dtype.json").read_text())
    assert [r["layer"] for r in result["rows"]] == ["mamba2 in_proj", "mamba2 out_proj", "mlp fc1", "mlp fc2"]
    for r in result["rows"]:
        assert r["fp32_ms"] > 0 and r["bf16_ms"] > 0
        assert math.isclose(r["bf16_speedup"], r["fp32_ms"] / r["bf16_ms"], rel_tol=1e-9)
    assert result["meta"]["torch_cpu_capability"] in stdout


@pytest.mark.slow
def test_profile_step_quick(tmp_path):
    out = tmp_path / "profile.json"
    stdout = _run("profile_step.py", ["--quick", "--out", str(out)], tmp_path, timeout=600)
    result = json.loads(out.read_text())
    parts = {r["part"]: r for r in result["rows"]}
    for m in ("rna", "atac"):
        assert parts[f"tokens/{m}"]["ms"] > 0 and parts[f"tokens/{m}"]["saved_MB"] > 0
        for part in ("non-zeros", "input", "tokens", "blocks", "head"):
            row = parts[f"embed {part}/{m} (per 1,000 cells)"]
            assert row["ms"] > 0 and row["share_of_step"] is None  # embedding parts are not shares of a step
    assert 0 < parts["decode/rna->atac"]["share_of_step"] < 1
    assert result["train_cells_per_s"] > 0 and result["embed_cells_per_s"] > 0
    assert "| embed blocks/atac (per 1,000 cells) |" in stdout


@pytest.mark.slow
def test_compile_check_quick(tmp_path):
    stdout = _run("compile_check.py", ["--tokens", "8", "--repeats", "1", "--out", str(tmp_path)], tmp_path, 900)
    rows = json.loads((tmp_path / "compile_check.json").read_text())["rows"]
    assert [r["phase"] for r in rows] == ["embed", "train step"]
    for r in rows:
        assert r["eager_ms"] > 0 and r["compiled_ms"] > 0 and r["compile_s"] > 0
        assert r["max_abs_diff"] < 1e-4  # the compiled block computes what the eager one does
    assert "| embed |" in stdout


def test_type_oracle_foscttm_matches_a_simulated_type_oracle():
    import numpy as np
    from benchmarks.ceiling import type_oracle_foscttm

    from scmamba.metrics import foscttm

    assert type_oracle_foscttm(np.array(["a", "a", "b", "b"])) == pytest.approx(2 / 12)  # by hand
    rng = np.random.default_rng(0)
    labels = rng.choice(4, size=600, p=[0.5, 0.3, 0.15, 0.05])
    centres = 100.0 * np.eye(4)[labels]  # types far apart; positions within a type independent across layers
    x, y = centres + rng.normal(size=(600, 4)), centres + rng.normal(size=(600, 4))
    assert foscttm(x, y) == pytest.approx(type_oracle_foscttm(labels), abs=0.01)


def test_gene_peak_graph_links_gene_body_and_strand_aware_promoter():
    from benchmarks.mosaic import _gene_peak_graph

    genes = pd.DataFrame(
        {"chrom": ["chr1", "chr1", "chr2"], "start": [10_000, 50_000, 10_000], "end": [20_000, 60_000, 20_000],
         "strand": ["+", "-", "+"]},
        index=["plus", "minus", "other_chrom"],
    )  # fmt: skip
    peaks = pd.DataFrame(
        {"chrom": ["chr1"] * 5, "start": [7_000, 9_000, 15_000, 59_500, 61_000],
         "end": [7_500, 9_500, 15_500, 60_500, 61_500]},
        index=["far_upstream", "plus_promoter", "plus_body", "minus_end", "minus_promoter"],
    )  # fmt: skip
    graph = _gene_peak_graph(genes, peaks)
    linked = {g: sorted(v for v in graph.successors(g) if v != g) for g in genes.index}
    # the 2 kb promoter lies upstream of the TSS: before the start on "+", after the end on "-"
    assert linked == {
        "plus": ["plus_body", "plus_promoter"],
        "minus": ["minus_end", "minus_promoter"],
        "other_chrom": [],
    }
    assert all(graph.has_edge(v, g) for g, vs in linked.items() for v in vs)  # reverse edges
    assert all(graph.has_edge(n, n) for n in [*genes.index, *peaks.index])  # self-loops on every feature
    assert not graph.has_edge("plus", "far_upstream")


DEMO = ROOT / "src" / "scmamba" / "datasets" / "_data" / "snareseq_cortex_demo.h5mu"  # 2,500 shipped cells


@pytest.fixture(scope="module")
def tiny_ablation(tmp_path_factory) -> Path:
    """One tiny 2-epoch ``ablation.py`` run on the shipped demo cells (rows in ``ablation.jsonl``, model in ``m``)."""
    tmp_path = tmp_path_factory.mktemp("ablation")
    kwargs = json.dumps({"d_model": 32, "n_layers": 1, "d_state": 16, "headdim": 16, "n_latent": 16})
    args = ["--data", str(DEMO), "--name", "tiny", "--kwargs", kwargs, "--epochs", "2", "--every", "1"]
    _run("ablation.py", [*args, "--threads", "1", "--out", str(tmp_path / "ablation.jsonl"),
                         "--save", str(tmp_path / "m")], tmp_path, 600)  # fmt: skip
    return tmp_path


def test_ceiling_quick(tmp_path, tiny_ablation):
    out = tmp_path / "ceiling.json"
    args = ["--data", str(DEMO), "--C", "1", "--model", str(tiny_ablation / "m"), "--match", "--out", str(out)]
    stdout = _run("ceiling.py", args, tmp_path, timeout=600)
    result = json.loads(out.read_text())
    assert {(r["layer"], r["classifier"]) for r in result["rows"]} == {
        *((layer, clf) for layer in ("rna", "atac") for clf in ("logreg C=1", "knn15")),
        ("atac", "scmamba rna->atac knn15"),
    }
    import mudata as md
    import numpy as np
    from benchmarks.helpers.common import holdout_split

    labels = md.read_h5mu(DEMO)["rna"].obs["cell_type"].astype(str).to_numpy()[holdout_split(2500, 0)[1]]
    types, counts = np.unique(labels, return_counts=True)
    for r in result["rows"]:
        if r["classifier"] != "scmamba rna->atac knn15":  # each read-out is far better than chance (23 types)
            assert 3 / 23 < r["acc"] <= 1 and 0 < r["macro_f1"] <= 1
        assert list(r["recall"]) == list(types)  # recall per held-out type; weighted by counts it is the accuracy
        assert np.dot(counts, list(r["recall"].values())) / counts.sum() == pytest.approx(r["acc"], abs=2e-3)
        assert r["acc"] <= r["acc_coarse"] <= 1  # a right fine type is a right coarse group
    assert result["n_test"] == 500 and 0 < result["type_oracle_foscttm"] < 0.5
    assert "type-oracle FOSCTTM" in stdout and "recall per held-out cell type" in stdout
    assert [r["map"] for r in result["match"]] == ["CCA 10", "CCA 20", "ridge RNA->other", "MLP RNA->other"]
    for r in result["match"]:  # maps fitted on the reference pairs match held-out cells better than chance (0.5)
        assert 0 < r["FOSCTTM"] < 0.5 and 0 < r["FOSCTTM_within_batch"] < 0.5
        if r["map"].startswith("CCA"):  # ~0.26-0.30 on the demo's 500 held-out cells
            assert r["FOSCTTM"] < 0.35


def test_foscttm_within_weights_each_batch_by_its_cells():
    import numpy as np
    from benchmarks.helpers.common import foscttm_within

    from scmamba.metrics import foscttm

    rng = np.random.default_rng(0)
    groups = np.repeat(["a", "b"], [300, 100])
    offset = 1000.0 * (groups == "b")[:, None]  # batches far apart: no cell of the other batch is ever closer
    x = rng.normal(size=(400, 3)) + offset
    y = x + rng.normal(scale=[[0.5]] * 300 + [[2.0]] * 100, size=(400, 3))  # batch b matches worse
    f_a, f_b = foscttm(x[:300], y[:300]), foscttm(x[300:], y[300:])
    assert f_b > f_a > 0
    assert foscttm_within(x, y, groups) == pytest.approx(0.75 * f_a + 0.25 * f_b)
    # over all cells each batch's counts are divided by all 400 cells: separated batches make the match look better
    assert foscttm(x, y) == pytest.approx(0.75**2 * f_a + 0.25**2 * f_b)


def test_ablation_quick(tiny_ablation):
    out = tiny_ablation / "ablation.jsonl"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["name"] == "tiny" for r in rows)
    for r in rows:
        assert 0 <= r["foscttm"] <= 1 and 0 <= r["foscttm_train"] <= 1 and 0 <= r["acc"] <= 1
        assert 0 < r["train_s"] < r["wall_s"] and r["peak_rss_gb"] > 0
    assert rows[1]["train_s"] > rows[0]["train_s"]
    assert (tiny_ablation / "m" / "model.pt").exists()


@pytest.mark.slow
def test_mosaic_quick(tmp_path):
    data = [shared_file(DATASETS[d][0]) for d in ("snareseq", "abseq")]
    stdout = _run("mosaic.py", ["--quick", "--data", *map(str, data), "--out", str(tmp_path)], tmp_path, timeout=900)
    table = _last_table(stdout)
    assert len(table) == 2 + 5, table  # header, separator, two methods on SNARE-seq, three on Abseq
    rows = {}
    for path in data:
        result = json.loads((tmp_path / f"mosaic_{path.stem}_quick.json").read_text())
        assert result["meta"]["quick"] and result["meta"]["label_key"] == "cell_type"
        rows.update({(path.stem, r["method"]): r for r in result["rows"]})
    assert set(rows) == {(data[0].stem, "scmamba"), (data[0].stem, "multivi"), (data[1].stem, "scmamba"),
                         (data[1].stem, "multivi"), (data[1].stem, "totalvi")}  # fmt: skip
    for (_, method), r in rows.items():
        assert r["n_cells"] == 600 and r["epochs"] == 2
        if method == "totalvi":  # protein-only cells cannot be embedded by TOTALVI: no metric, a note says why
            assert "transfer_acc" not in r and "protein-only cells cannot be embedded" in r["note"]
            continue
        assert 0 <= r["transfer_acc"] <= 1 and 0 <= r["transfer_f1"] <= 1
        for key in ("foscttm", "foscttm_rna_only", "foscttm_other_only"):
            assert 0 <= r[key] <= 1


def test_match_scaling_quick(tmp_path):
    stdout = _run("match_scaling.py", ["--quick", "--out", str(tmp_path)], tmp_path, timeout=300)
    (row,) = json.loads((tmp_path / "match_scaling_quick.json").read_text())["rows"]
    assert row["n_query"] == 2000 and row["max_score_error"] < 1e-5 and row["peak_rss_gb"] > 0
    assert "dense N x N" in stdout


def test_regime_quick(tmp_path):
    """One row of the regime table: a 300-cell Abseq panel (100 genes), tiny SCMAMBA with and without its blocks,
    every classic method."""
    shared_file("abseq_bonemarrow_triana2021.h5mu")
    out = tmp_path / "regime.jsonl"
    from scmamba import SCMAMBA

    config = json.dumps({**SCMAMBA.small_config(), "linear_view": 10})
    args = [
        "--sets", "abseq", "--sizes", "300", "--panels", "panel", "--seeds", "0",
        "--methods", "scmamba,scmamba_no_block,rna_pca,second,wnn,harmony", "--scmamba-kwargs", config,
        "--train-kwargs", '{"max_epochs": 2}', "--out", str(out),
    ]  # fmt: skip
    _run("regime.py", args, tmp_path, timeout=1200)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    methods = {r["method"] for r in rows}
    assert methods == {
        "scmamba", "scmamba_rna", "scmamba_protein", "scmamba_no_block", "rna_pca", "second", "wnn", "harmony"
    }  # fmt: skip
    for r in rows:
        assert r["n_cells"] == 300 and r["n_genes"] == 100 and r["n_other"] == 97 and r["n_batches"] > 1
        assert 0.0 <= r["nmi"] <= 1.0 and -1.0 <= r["ari"] <= 1.0
        if r["method"] != "wnn":  # a graph: no embedding for scib
            assert 0.0 <= r["batch"] <= 1.0 and r["total"] == pytest.approx(0.6 * r["bio"] + 0.4 * r["batch"])
    weights = next(r for r in rows if r["method"] == "scmamba")["layer_weights"]
    assert set(weights) == {"rna", "protein"} and sum(weights.values()) == pytest.approx(1.0)
    table = pd.read_csv(out.with_suffix(".csv"))
    assert {"ari", "nmi", "bio", "batch", "total", "seeds"} <= set(table.columns)
    # a rerun skips the rows already written (a long run resumes)
    _run("regime.py", args, tmp_path, timeout=300)
    assert len(out.read_text().splitlines()) == len(rows)
