"""The benchmark scripts: each is a thin command line over :mod:`benchmarks.helpers`.

Run them from the repository root as modules, e.g. ``python -m benchmarks.regime --help``; ``benchmarks/README.md``
says what each measures and holds the latest tables.
"""
