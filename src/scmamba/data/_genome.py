"""Former home of :func:`genomic_order`, kept as an import path for ``model/_scmamba.py``.

Remove once that module imports :func:`scmamba.data.genomic_order`; the code lives in ``_regions`` (chromosome
names, region strings), ``_annotation`` (gene tables), ``_coordinates`` (matching genes to a table) and ``_order``.
"""

from ._order import genomic_order

__all__ = ["genomic_order"]
