"""Training of SCMAMBA (:class:`TrainingMixin`) and the joint embedding's layer weights set around it."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator, Mapping
from typing import Literal

import numpy as np
import torch

from .._constants import MODALITY_REGISTRY_KEYS
from .._malloc import reuse_freed_memory
from ..dataloaders import training_datamodule
from ._presets import (
    DEFAULT_BATCH_SIZE,
    EMBED_BATCH_SIZE,
    default_max_epochs,
)

logger = logging.getLogger(__name__)

#: Lightning's INFO lines that SCMAMBA's own set-up triggers on every run, or that advertise a service: the training
#: plan's schedule asks for the number of steps (which loads the training data once), a run that ends at
#: ``max_epochs`` says so, and the logger connector suggests a cloud logger.
_QUIET_LOGS = (
    "Loading `train_dataloader` to estimate number of stepping batches",
    "`Trainer.fit` stopped: `max_epochs=",
    "\N{ELECTRIC LIGHT BULB} Tip:",
)
#: Warnings a run triggers by design or that concern only the versions of SCMAMBA's dependencies:
#: ``(message regex, category, module regex)`` as for :func:`warnings.filterwarnings`.
_QUIET_WARNINGS = (
    # a small data set has fewer minibatches per epoch than Lightning's step-logging interval; SCMAMBA's history
    # is logged per epoch, so nothing is lost
    (r"The number of training batches \(\d+\) is smaller than the logging interval", Warning, ""),
    # Lightning's pytree helper asks torch in a form newer torch deprecates (a Lightning-torch version notice)
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", Warning, r"lightning\.pytorch\.utilities\._pytree"),
)


class _DropMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_QUIET_LOGS)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Within, Lightning's notices that a SCMAMBA run triggers by design are not shown; all others are.

    Those notices are listed in ``_QUIET_LOGS`` and ``_QUIET_WARNINGS``; the filters end with the block.
    """
    drop = _DropMessages()
    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    lightning_log.addFilter(drop)
    try:
        with warnings.catch_warnings():
            for message, category, module in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=category, module=module)
            yield
    finally:
        lightning_log.removeFilter(drop)


class TrainingMixin:
    """Training: :meth:`train` and the layer weights of the joint embedding it measures after training."""

    def _set_layer_weights_arg(self, layer_weights) -> None:
        """Fixed weights from a dict now; ``'reliability'`` weights are measured after training (:meth:`train`)."""
        if isinstance(layer_weights, Mapping):
            unknown = set(layer_weights) - set(self.modalities)
            missing = set(self.modalities) - set(layer_weights)
            values = np.array([float(layer_weights.get(m, 0.0)) for m in self.modalities])
            if unknown or missing or not (np.all(values >= 0) and values.sum() > 0):
                raise ValueError(
                    f"layer_weights as a dict needs a non-negative weight for each of {self.modalities} (not all "
                    f"zero), got {dict(layer_weights)}."
                )
            self.module.layer_weights.copy_(torch.as_tensor(values / values.sum()))
        elif layer_weights not in ("reliability", "equal"):
            raise ValueError(
                f"layer_weights must be 'reliability', 'equal' or a dict of weights per layer, got {layer_weights!r}."
            )
        self.layer_weights_mode_ = "fixed" if isinstance(layer_weights, Mapping) else layer_weights
        self._sync_layer_weights()

    def _sync_layer_weights(self) -> None:
        #: Each layer's weight in the joint embedding (``modality='joint'``), e.g. ``{'rna': 0.9, 'atac': 0.1}``;
        #: a copy of the module's buffer ``layer_weights``, which the embedding uses.
        self.layer_weights_ = dict(zip(self.modalities, self.module.layer_weights.tolist(), strict=True))

    def _measure_layer_weights(self) -> None:
        """Set the joint embedding's layer weights from each layer's split-half reliability (``_layer_weights.py``)."""
        from ._layer_weights import measure_layer_weights

        matrices = {m: self.adata_manager.get_from_registry(MODALITY_REGISTRY_KEYS[m]) for m in self.modality_mods_}
        self.layer_reliability_ = measure_layer_weights(self.module, matrices, EMBED_BATCH_SIZE)
        self._sync_layer_weights()
        logger.info("Layer reliability %s; joint embedding weights %s.", self.layer_reliability_, self.layer_weights_)

    def train(
        self,
        max_epochs: int | None = None,
        *,
        lr: float = 1e-3,
        batch_size: int | None = None,
        train_size: float | None = None,
        validation_size: float | None = None,
        early_stopping: bool = False,
        precision: str | int | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        datasplitter_kwargs: dict | None = None,
        plan_kwargs: dict | None = None,
        data_source: Literal["auto", "memory", "stream"] = "auto",
        **trainer_kwargs,
    ):
        """Train the encoders contrastively.

        Parameters
        ----------
        max_epochs
            Passes over the training cells. ``None``: one per 50 training cells, between 10 and 50 (10 for 500
            cells, 20 for 1,000, 50 from 2,500 cells on). Training starts from each layer's classic reduction
            (``linear_view``), and on a few hundred cells more passes let the encoders fit the cells they see at the
            cost of the cell-type structure (on 500-cell sets Leiden ARI fell from 0.36 after 10 passes to 0.18 after
            50), while from a few thousand cells on 50 passes are what the defaults were chosen with
            (``benchmarks/README.md``, regime table). A 100k-cell atlas gets 50 passes, tens of thousands of steps.
        lr
            Peak learning rate (AdamW, linear warm-up then cosine decay).
        batch_size
            Cells per minibatch (per process under DDP); larger batches give more negatives. ``None``: about 128,
            evened out so that the minibatches of an epoch hold every training cell (``n_train // ceil(n_train /
            128)`` cells each; fewer cells than minibatches are left out of an epoch, a different few each time): with
            exactly 128 and ``drop_last``, 116 of 500 cells would sit out every epoch.
        train_size, validation_size
            Split of the cells; the validation cells give ``validation_loss``. By default (``None``) every cell is
            trained on (``1.0``), or 0.9 of them (scvi-tools' split) with ``early_stopping`` or a
            ``validation_size``, which need validation cells. The contrastive objective fits the pairs it
            trains on, so cells held out for a validation loss would be embedded as new cells, less faithfully
            than the rest, into the neighbour graph and clusters of the same data. With no validation cells there
            is no validation loop, as in scvi-tools.
        early_stopping
            Stop when ``validation_loss`` stops improving (``early_stopping_patience`` etc. go to trainer kwargs).
        precision
            Lightning precision, e.g. ``'bf16-mixed'`` (bf16 autocast on CPU or GPU; SSD decays and state passing
            stay in float32). ``'bf16'`` is accepted as a shorthand.
        accelerator, devices
            Lightning accelerator and devices, e.g. ``accelerator='gpu', devices=4, strategy='ddp'``.
        datasplitter_kwargs
            Passed to :class:`~scvi.dataloaders.DataSplitter` (``drop_last=True`` by default: every training
            minibatch has ``batch_size`` cells, so the contrastive task has a constant number of negatives). With
            ``drop_last=False``, a last minibatch of a single cell (which BatchNorm cannot train on) is still
            dropped, with a warning.
        plan_kwargs
            Passed to :class:`~scmamba.train.ContrastiveTrainingPlan` (``weight_decay``, ``warmup_fraction`` ...).
        data_source
            ``'stream'``: minibatches read in contiguous chunks, shuffled in memory buffers, by a reader thread
            (:class:`~scmamba.dataloaders.StreamingDataModule`; ``datasplitter_kwargs`` then also take
            ``chunk_size``, ``buffer_cells``, ``prefetch``, ``pin_memory``): for data on disk, larger than memory.
            ``'memory'``: scvi-tools' loader of random rows. ``'auto'``: streaming when the MuData is backed.
        **trainer_kwargs
            Passed to :class:`~scvi.train.Trainer` / Lightning (``strategy``, ``gradient_clip_val`` ...).

        Notes
        -----
        On a CPU at full multiome width, a step allocates and frees blocks of tens of MiB that glibc maps and
        page-faults in anew each time. Set the environment variable ``SCMAMBA_MALLOC_TUNING=1`` (Linux, glibc) to
        keep freed memory in the process for the next minibatch during training and
        :meth:`get_latent_representation`, and return it at the end (``scmamba._malloc``); it changes malloc's
        settings for the whole process, so it is off by default.
        """
        self.adata_manager.check_data()  # registry vs data, before Lightning starts
        n_obs = self.adata.n_obs
        if train_size is None:
            train_size = 0.9 if early_stopping or validation_size is not None else 1.0
        fraction = float(train_size)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"train_size must be in (0, 1], got {train_size}.")
        n_train = math.ceil(fraction * n_obs)  # as scvi-tools' DataSplitter
        n_val = n_obs - n_train if validation_size is None else math.floor(n_obs * validation_size)
        if n_train < 2:
            raise ValueError(
                f"SCMAMBA needs at least 2 training cells (its loss contrasts the cells of a minibatch); {n_obs} cells "
                f"with train_size={train_size} leave {n_train}."
            )
        if max_epochs is None:
            max_epochs = default_max_epochs(n_train)
        if batch_size is None:
            batch_size = n_train // math.ceil(n_train / DEFAULT_BATCH_SIZE)
        batch_size = max(2, min(batch_size, n_train))
        plan_kwargs = {"lr": lr, **(plan_kwargs or {})}
        datasplitter_kwargs = {"drop_last": True, **(datasplitter_kwargs or {})}
        if not datasplitter_kwargs["drop_last"] and n_train % batch_size == 1:
            warnings.warn(
                f"The last training minibatch would hold 1 cell ({n_train} training cells, batch_size={batch_size}), "
                "which BatchNorm cannot train on: it is dropped in every epoch (drop_last=True; minibatches are "
                "shuffled, so a different cell each epoch).",
                UserWarning,
                stacklevel=2,
            )
            datasplitter_kwargs["drop_last"] = True
        if precision is not None:
            trainer_kwargs["precision"] = {"bf16": "bf16-mixed", "16": "16-mixed"}.get(str(precision), precision)
        trainer_kwargs.setdefault("early_stopping_monitor", "validation_loss")
        trainer_kwargs.setdefault("gradient_clip_val", 1.0)
        if n_val > 0:
            trainer_kwargs.setdefault("check_val_every_n_epoch", 1)
        else:  # no validation cells: no validation loop (scvi-tools' default), whatever was asked
            if early_stopping:
                raise ValueError(
                    f"early_stopping monitors validation_loss, but train_size={train_size} leaves no validation "
                    f"cells of {n_obs}; lower train_size or train without early stopping."
                )
            trainer_kwargs.pop("check_val_every_n_epoch", None)
            trainer_kwargs["limit_val_batches"] = 0
        # Lightning keeps the modules' train/eval modes as it finds them; after get_latent_representation or
        # load_query_data they are in eval mode (dropout off, BatchNorm frozen), which must not carry into training.
        self.module.train()
        datamodule = training_datamodule(self.adata_manager, data_source, train_size=train_size,
                                         validation_size=validation_size, batch_size=batch_size,
                                         datasplitter_kwargs=datasplitter_kwargs)  # fmt: skip
        with reuse_freed_memory(), quiet_lightning():
            result = super().train(
                datamodule=datamodule,
                load_sparse_tensor=True,
                max_epochs=max_epochs,
                accelerator=accelerator,
                devices=devices,
                train_size=train_size,
                validation_size=validation_size,
                batch_size=batch_size,
                early_stopping=early_stopping,
                datasplitter_kwargs=datasplitter_kwargs,
                plan_kwargs=plan_kwargs,
                **trainer_kwargs,
            )
        # a query model keeps its reference's weights, so that its joint embedding stays in the reference's space
        if self.layer_weights_mode_ == "reliability" and len(self.modalities) > 1 and not self._is_query_model():
            self._measure_layer_weights()
        # a query model keeps its reference's correction too (its new batches are left uncorrected)
        if self.batch_correction_ is not None and self.summary_stats.n_batch > 1 and not self._is_query_model():
            self._fit_batch_correction()
        return result

    def _fit_batch_correction(self) -> None:
        """Fit the donor correction (Harmony, ``_batch_correction.py``) on the registered cells' joint embedding."""
        from ._batch_correction import fit_latent_correction

        correction = self.module.latent_correction
        correction.set(correction.centroids[:0], correction.sigma[:0], correction.offsets[:0, :0])
        adata, _ = self._registered_data(None)
        z, batch = self._embed_registered(adata, self._latent_modalities("joint"), corrected=False)
        fitted = fit_latent_correction(
            z, batch, self.summary_stats.n_batch, self.batch_correction_, n_threads=torch.get_num_threads()
        )
        correction.set(*(torch.from_numpy(a) for a in fitted))
        logger.info("Donor correction: %d clusters, Harmony settings %s.", len(fitted[0]), self.batch_correction_)

    def _is_query_model(self) -> bool:
        return bool(getattr(self, "from_reference_", False))
