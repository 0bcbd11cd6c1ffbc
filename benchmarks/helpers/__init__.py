"""What the benchmark scripts share.

:mod:`~benchmarks.helpers.common`: paths, data loading and splits, threads, time and memory probes, child processes,
tables. :mod:`~benchmarks.helpers.methods`: one runner per method (SCMAMBA and its no-block baseline, MULTIVI,
TOTALVI, RNA PCA, per-layer reductions, Harmony, WNN). :mod:`~benchmarks.helpers.synthetic`: paired RNA + ATAC
data of any size resampled from a real data set.
"""
