"""Registration of a paired MuData: cells paired by name, one validation path, registry-vs-data consistency.

scvi-tools' MuData fields read each modality's matrix (and a modality's ``obs`` columns) by row position, and its
:class:`~scvi.data.AnnTorchDataset` slices every registered matrix with the same row indices, so modalities whose
rows are in different orders would be paired by position. :class:`PairedMuDataManager` keeps the user's MuData
as it is and hands out datasets that map each ``mdata.obs_names`` row to its row in every modality (by
``obs_names``), for training and for embedding alike; results therefore follow ``mdata.obs_names``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from copy import deepcopy

import numpy as np
import pandas as pd
from scipy import sparse
from scvi.data import AnnDataManager, AnnDataManagerValidationCheck, AnnTorchDataset
from scvi.dataloaders import DataSplitter
from torch.utils.data import Subset

from .._constants import MODALITY_LAYER_ARGS, MODALITY_REGISTRY_KEYS, OBSERVED_KEY
from .._counts import expand_rows, read_rows, row_readable
from ..data import GenomeOrder, genomic_order
from ..nn._sparse import csr_tensor
from ._features import features_differ, features_message, registered_features
from ._modalities import check_modalities_and_layers, registered_layers, registered_modalities
from ._pairing import Mosaic, check_paired, row_positions
from ._validation import validate_mudata

logger = logging.getLogger(__name__)


def _matrix_fingerprint(adata, layer):
    """What identifies a registered matrix cheaply: the AnnData and matrix objects (not for backed files) and shape."""
    X = adata.X if layer is None else adata.layers[layer]
    backed = adata.isbacked and layer is None
    return id(adata), None if backed else id(X), tuple(X.shape)


class PairedAnnTorchDataset(AnnTorchDataset):
    """:class:`~scvi.data.AnnTorchDataset` whose modality count matrices are read at each cell's row in its modality.

    ``matrix_keys`` are the data registry keys of the modalities' count matrices. They are read here, not by
    scvi-tools, as the model reads every count matrix: canonical float32 CSR (:func:`canonical_counts`: duplicate
    entries summed, indices sorted), whatever the storage (dense, CSR, CSC, scipy sparse arrays, any integer or
    float dtype, backed). A CSC (or other non-CSR) matrix in memory is converted to CSR once, as a copy.

    ``rows`` maps a data registry key to the row, in that key's modality, of every ``mdata.obs_names`` cell (keys
    whose modality is in ``mdata.obs_names`` order are left out and read at the cell's own row). A row of -1 is a
    cell not measured in that modality (mosaic data): its row in the minibatch is empty (no counts).

    ``observed`` (mosaic data only) maps each modality kind to a boolean array over ``mdata.obs_names``; every
    minibatch then carries it as ``observed_<modality>`` (:data:`~scmamba._constants.OBSERVED_KEY`), a
    ``(cells, 1)`` boolean array, so that the module uses only the measured rows.
    """

    def __init__(self, adata_manager, *, rows: dict[str, np.ndarray], observed: dict[str, np.ndarray] | None = None,
                 matrix_keys: Sequence[str] = (), **kwargs):  # fmt: skip
        super().__init__(adata_manager, **kwargs)
        self.rows = rows
        self.observed = observed or {}
        self.matrix_keys = tuple(matrix_keys)
        self._readable: dict[str, object] = {}

    def __getitem__(self, indexes):
        if isinstance(indexes, int | np.integer):
            indexes = [indexes]
        if isinstance(indexes, slice):
            indexes = np.arange(len(self))[indexes]
        indexes = np.asarray(indexes)
        if self.adata_manager.adata.isbacked:
            indexes = np.sort(indexes)  # as scvi-tools does, so every key comes in the same (sorted) cell order
        out = {}
        for key, dtype in self.keys_and_dtypes.items():
            if key in self.matrix_keys:
                out[key] = self._read_counts(key, indexes)
            else:
                out[key] = self._read_column(key, dtype, indexes)
        for modality, observed in self.observed.items():
            out[OBSERVED_KEY.format(modality)] = observed[indexes][:, None]
        return out

    def _read_column(self, key: str, dtype, indexes: np.ndarray) -> np.ndarray:
        """An ``obs`` column (batch or label codes) of ``mdata.obs_names`` cells ``indexes``, as ``dtype``.

        A modality's column is read at each cell's row there (zeros for cells the modality lacks).
        """
        data = self.data[key]
        values = data.to_numpy() if isinstance(data, pd.DataFrame) else np.asarray(data)
        pos = self.rows[key][indexes] if key in self.rows else indexes
        present = pos >= 0
        if present.all():
            return values[pos].astype(dtype, copy=False)
        out = np.zeros((len(pos), *values.shape[1:]), dtype=dtype)
        out[present] = values[pos[present]]
        return out

    def _read_counts(self, key: str, indexes: np.ndarray):
        """The count rows of ``mdata.obs_names`` cells ``indexes`` (empty rows for cells a modality lacks)."""
        if key not in self._readable:
            self._readable[key] = row_readable(self.data[key])
        X = self._readable[key]
        pos = self.rows[key][indexes] if key in self.rows else indexes
        present = pos >= 0
        if present.all():
            block = read_rows(X, pos)
        elif present.any():  # mosaic: cells not measured in this modality get empty rows
            block = expand_rows(read_rows(X, pos[present]), present)
        else:  # no row to read (the modality may have none)
            block = sparse.csr_matrix((len(pos), X.shape[1]), dtype=np.float32)
        if not self.load_sparse_tensor:
            return block.toarray()
        return csr_tensor(block.indptr, block.indices, block.data, block.shape)


class PairedMuDataManager(AnnDataManager):
    """:class:`~scvi.data.AnnDataManager` for SCMAMBA's paired MuData.

    * Every registration (set-up, a query, ``load``) runs :func:`~scmamba.model._validation.validate_mudata`:
      the same checks and messages for training and query data.
    * Pairing is checked on the registered modalities only (by ``obs_names``); other modalities of the MuData,
      e.g. hashtags measured on some cells, are not used and do not block set-up. Cells missing from a registered
      modality are cells measured without it (a mosaic, :attr:`mosaic`): their rows there are empty and every
      minibatch says which cells each modality measured.
    * Before every data loader (training, embedding), :meth:`check_data` compares the registry with the data:
      the registered features, layers and cells must still be there; a replaced matrix is validated again.
    """

    def __init__(self, fields=None, setup_method_args=None, validation_checks=None):
        if validation_checks is None:
            # pairing is checked by name on the registered modalities (check_paired), not on every modality
            validation_checks = AnnDataManagerValidationCheck(check_fully_paired_mudata=False)
        super().__init__(fields=fields, setup_method_args=setup_method_args, validation_checks=validation_checks)
        self._fingerprints: dict[str, tuple] = {}
        #: Which registered modalities measure each ``mdata.obs_names`` cell (set at registration).
        self.mosaic: Mosaic | None = None
        self._training_data = True  # set at registration: a query need not have pairs or cells in every layer
        self._genome_orders: dict[str, GenomeOrder] = {}
        self._registration_kwargs: dict = {}

    @property
    def _setup_args(self) -> dict:
        return self.registry["setup_args"]

    def _registered(self) -> dict[str, str]:
        return registered_modalities(self._setup_args["modalities"])

    def _layers(self) -> dict[str, str | None]:
        return registered_layers(self._setup_args)

    def register_fields(self, adata, source_registry=None, **transfer_kwargs):
        """Validate the MuData (:func:`~scmamba.model._validation.validate_mudata`), then register it."""
        mosaic, self._genome_orders = validate_mudata(adata, self._setup_args, source_registry=source_registry)
        self._training_data = source_registry is None
        super().register_fields(adata, source_registry, **transfer_kwargs)
        self._registration_kwargs = dict(transfer_kwargs)  # for registering again in check_data
        self._fingerprints = self._current_fingerprints()
        self.mosaic = mosaic
        if mosaic.is_mosaic:
            logger.info("Mosaic MuData: %s.", mosaic.describe())

    def genome_order(self, modality: str) -> GenomeOrder:
        """The genomic order of a registered modality's features, computed once per registration.

        A fresh set-up computes it while checking the coordinates; a registration against a saved registry
        (``load``, queries) computes it on first use. The module keeps it as a buffer, so a model built from
        this set-up reuses it instead of ordering the features again.
        """
        if modality not in self._genome_orders:
            mod = self._registered()[modality]
            annotation = self._setup_args.get(f"{modality}_annotation")
            self._genome_orders[modality] = genomic_order(
                self.adata.mod[mod].var, modality=modality, annotation=annotation
            )
        return self._genome_orders[modality]

    def transfer_fields(self, adata_target, **kwargs):
        """Register query data with this setup; new batch categories are added (embedding does not use them)."""
        kwargs.setdefault("extend_categories", True)
        return super().transfer_fields(adata_target, **kwargs)

    def _current_fingerprints(self) -> dict[str, tuple]:
        layers = self._layers()
        return {
            mod: _matrix_fingerprint(self.adata.mod[mod], layers[MODALITY_LAYER_ARGS[modality]])
            for modality, mod in self._registered().items()
        }

    def _codes_columns_ok(self) -> bool:
        """The integer-code columns scvi-tools wrote into ``obs`` at registration are still there and complete."""
        for registry_key, loc in self.data_registry.items():
            if loc["attr_name"] != "obs":
                continue
            mod = loc.get("mod_key")
            obs = self.adata.obs if mod is None else self.adata.mod[mod].obs
            column = loc["attr_key"]
            if column not in obs or obs[column].isna().any():
                logger.info("obs column %r of %s is missing or incomplete.", column, registry_key)
                return False
        return True

    def check_data(self) -> None:
        """Registry-vs-data consistency, before training and embedding.

        Raises when a registered modality, its layer or its features are gone or changed, or when cells are no
        longer paired; re-validates and re-registers (against this registry, so categories keep their codes) when
        a registered matrix was replaced or obs code columns were lost.
        """
        mdata = self.adata
        if mdata is None:
            raise ValueError("No MuData is registered with this manager; call SCMAMBA.setup_mudata(mdata, ...).")
        prefix = (
            "The MuData changed since SCMAMBA.setup_mudata registered it (the model and its registry were built for "
            "the registered data): "
        )
        registered = self._registered()
        try:
            check_modalities_and_layers(mdata, registered, self._layers())
        except ValueError as err:
            raise ValueError(prefix + str(err)) from None
        for modality, mod in registered.items():
            difference = features_differ(mdata.mod[mod].var_names, registered_features(self.registry, modality))
            if difference is not None:
                raise ValueError(prefix + features_message(mod, modality, difference, retrain=True))
        self.mosaic = check_paired(mdata, registered, training=self._training_data)
        if self._current_fingerprints() != self._fingerprints or not self._codes_columns_ok():
            logger.info("A registered matrix or obs column changed: validating and registering the MuData again.")
            source = deepcopy(self.registry)
            try:
                validate_mudata(mdata, self._setup_args, source_registry=source)
            except ValueError as err:
                raise ValueError(prefix + str(err)) from None
            adata, self.adata = self.adata, None
            AnnDataManager.register_fields(self, adata, source, **self._registration_kwargs)
            self._fingerprints = self._current_fingerprints()

    def create_torch_dataset(self, indices=None, data_and_attributes=None, load_sparse_tensor=False):
        """A dataset that reads every modality at the row of each ``mdata.obs_names`` cell (pairing by name).

        On mosaic data, cells not measured in a modality get an empty row there, and every minibatch carries the
        ``observed_<modality>`` masks; fully paired data gets neither.
        """
        self.check_data()
        rows = {}
        for key, loc in self.data_registry.items():
            mod = loc.get("mod_key")
            if mod is None:
                continue
            pos = row_positions(self.adata, mod)
            if pos is not None:
                rows[key] = pos
        observed = self.mosaic.observed if self.mosaic.is_mosaic else None
        matrix_keys = [MODALITY_REGISTRY_KEYS[m] for m in self._registered()]
        dataset = PairedAnnTorchDataset(
            self, rows=rows, observed=observed, matrix_keys=matrix_keys, getitem_tensors=data_and_attributes,
            load_sparse_tensor=load_sparse_tensor,
        )  # fmt: skip
        return dataset if indices is None else Subset(dataset, indices)


class SparseDataSplitter(DataSplitter):
    """:class:`~scvi.dataloaders.DataSplitter` whose minibatches stay sparse on the device.

    scvi-tools turns sparse minibatches into dense tensors after moving them to the device; SCMAMBA's module
    reads only the non-zeros (:class:`~scmamba.nn.SparseRows`), so the dense ``cells x features`` block, hundreds
    of MB per step at full multiome width, is never built.
    """

    def on_after_batch_transfer(self, batch, dataloader_idx):
        """Keep sparse tensors as they are."""
        return batch
