"""Saving and loading SCMAMBA models (:class:`SaveLoadMixin`); the folder format is in ``_io.py``."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from mudata import MuData

if TYPE_CHECKING:
    from ._scmamba import SCMAMBA

logger = logging.getLogger(__name__)


class SaveLoadMixin:
    """Save and load a model folder that loads without unpickling (``model/_io.py``)."""

    def save(
        self,
        dir_path: str | os.PathLike,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        save_kwargs: dict | None = None,
        legacy_mudata_format: bool = False,
        **anndata_write_kwargs,
    ) -> None:
        """Save the model to a folder that loads without unpickling (no code in it can run on :meth:`load`).

        scvi-tools pickles a model into ``model.pt``, and loading a pickle runs any code the file carries; model
        folders are exchanged (supplements, hubs, collaborators), so SCMAMBA writes the weights alone to
        ``model.pt`` (read with ``torch.load(weights_only=True)``) and everything else (registry and set-up
        arguments, init parameters, var names, attributes such as ``history_``, ``trainable_parameters_`` and
        ``from_reference_``) to ``model.json``. The optimizer state is not saved.

        Parameters
        ----------
        dir_path
            Folder to write (created; an existing one only with ``overwrite=True``).
        prefix
            Prefix of the file names.
        overwrite
            Write into an existing folder.
        save_anndata
            Also write the MuData (``mdata.h5mu``), so that :meth:`load` needs no data.
        save_kwargs
            Passed to :func:`torch.save`.
        legacy_mudata_format
            Record the var names as one flat array (scvi-tools' legacy MuData format) instead of one per modality.
        **anndata_write_kwargs
            Passed to :meth:`mudata.MuData.write_h5mu`.
        """
        from ._io import write_folder

        write_folder(
            self, dir_path, prefix=prefix, overwrite=overwrite, save_anndata=save_anndata, save_kwargs=save_kwargs,
            legacy_mudata_format=legacy_mudata_format, **anndata_write_kwargs,
        )  # fmt: skip

    @classmethod
    def load(
        cls,
        dir_path: str | os.PathLike,
        adata: MuData | None = None,
        *,
        accelerator: str = "auto",
        device: int | str = "auto",
        prefix: str | None = None,
        trust_pickle: bool = False,
    ) -> SCMAMBA:
        """Load a saved model; ``adata`` must have the saved features per modality (else a ValueError says which).

        The folder is read once and without unpickling: ``model.pt`` with ``torch.load(weights_only=True)``, the
        rest from ``model.json`` (:meth:`save`). A ``model.pt`` that needs unpickling (a folder written by
        scvi-tools' ``save`` or an older scmamba, or a crafted file) could run arbitrary code: it is refused with
        :class:`~scmamba.model.UntrustedPickleError` unless ``trust_pickle=True``. Batches of ``adata`` the
        model has not seen (a new library) are added to the registry, as :meth:`load_query_data` does: the
        encoders embed any library (they do not use the batch); the decoders get zero offsets for the new batches.
        A query model saved after :meth:`load_query_data` keeps its freeze (only ``trainable_parameters_`` train).

        Parameters
        ----------
        dir_path
            Folder written by :meth:`~scmamba.SCMAMBA.save`.
        adata
            MuData to attach (``None``: the one saved with ``save_anndata=True``). It gets the checks of
            :meth:`setup_mudata`; cells are paired across modalities by ``obs_names`` and results follow
            ``adata.obs_names``.
        accelerator, device
            Where the model lives (Lightning style; ``'auto'``: the GPU if there is one).
        prefix
            Prefix of the file names (as given to :meth:`save`).
        trust_pickle
            Unpickle a ``model.pt`` that needs it. Unpickling runs any code the file carries: only for folders
            whose origin you trust; ``model.save(new_folder)`` then writes a folder that loads without it.
        """
        from ._io import build_model, read_folder

        if adata is not None and not isinstance(adata, MuData):
            raise TypeError(
                f"SCMAMBA.load needs a MuData with the saved model's modalities, got {type(adata).__name__}. For "
                "cells measured in one modality, load the model with its MuData (or save it with "
                "save_anndata=True and load without data), then call model.get_latent_representation(adata, "
                "modality='rna')."
            )
        saved = read_folder(dir_path, prefix=prefix, trust_pickle=trust_pickle)
        return build_model(cls, saved, adata, accelerator=accelerator, device=device)

    @staticmethod
    def load_registry(dir_path: str | os.PathLike, prefix: str | None = None, *, trust_pickle: bool = False) -> dict:
        """The registry saved with a model (set-up arguments, categories, features), read without unpickling.

        ``trust_pickle``: as in :meth:`load`, for a trusted folder whose ``model.pt`` needs unpickling.
        """
        from ._io import read_folder

        return read_folder(dir_path, prefix=prefix, trust_pickle=trust_pickle, weights=False).registry

    @staticmethod
    def view_setup_args(dir_path: str | os.PathLike, prefix: str | None = None, *, trust_pickle: bool = False) -> None:
        """Print the arguments a saved model was set up with, read without unpickling (see :meth:`load_registry`).

        (scvi-tools' version names ``setup_anndata`` for every model and needs ``rich.pretty`` imported.)
        """
        import rich
        import rich.pretty

        from ._io import read_folder

        registry = read_folder(dir_path, prefix=prefix, trust_pickle=trust_pickle, weights=False).registry
        method = registry.get("setup_method_name", "setup_mudata")
        rich.print(f"Setup via `{registry.get('model_name', 'SCMAMBA')}.{method}` with arguments:")
        rich.pretty.pprint(registry.get("setup_args"))

    @classmethod
    def convert_legacy_save(cls, dir_path, output_dir_path, overwrite=False, prefix=None, **save_kwargs):
        """Not supported: no SCMAMBA folder has scvi-tools' pre-0.15 layout.

        A folder in scvi-tools' current layout (one pickled ``model.pt``) is converted with
        ``SCMAMBA.load(folder, mdata, trust_pickle=True).save(new_folder)``, for folders you trust.
        """
        raise NotImplementedError(
            "SCMAMBA folders never had scvi-tools' pre-0.15 layout. To convert a folder written by scvi-tools' save "
            "(a pickled model.pt) that you trust: SCMAMBA.load(folder, mdata, trust_pickle=True).save(new_folder)."
        )
