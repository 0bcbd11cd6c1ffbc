"""Training plan: AdamW with linear warm-up and cosine decay; negatives gathered across DDP processes."""

from __future__ import annotations

import math

import torch
from scvi.train import TrainingPlan

__all__ = ["ContrastiveTrainingPlan"]


class ContrastiveTrainingPlan(TrainingPlan):
    """scvi-tools :class:`~scvi.train.TrainingPlan` for the contrastive SCMAMBA module.

    Parameters
    ----------
    module
        A :class:`~scmamba.module.ScMambaModule`.
    lr
        Peak learning rate.
    weight_decay
        AdamW weight decay (not applied to biases, norms, position embeddings, SSM ``A_log``/``D``/``dt_bias``
        and the temperature).
    warmup_fraction
        Fraction of all optimisation steps spent warming the learning rate up linearly from 0.
    min_lr_ratio
        Learning rate at the end of the cosine decay, as a fraction of ``lr``.
    gather_negatives
        Under multi-process training, contrast each cell against the embeddings of all processes.
    **kwargs
        Passed to :class:`~scvi.train.TrainingPlan`.
    """

    def __init__(
        self,
        module,
        *,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_fraction: float = 0.1,
        min_lr_ratio: float = 0.05,
        gather_negatives: bool = True,
        **kwargs,
    ):
        kwargs.setdefault("optimizer", "AdamW")
        kwargs.setdefault("eps", 1e-8)
        super().__init__(module, lr=lr, weight_decay=weight_decay, **kwargs)
        self.warmup_fraction = warmup_fraction
        self.min_lr_ratio = min_lr_ratio
        self.gather_negatives = gather_negatives

    def _gather(self, z: torch.Tensor) -> torch.Tensor:
        # Lightning's all_gather with sync_grads keeps the autograd graph, so every process's embeddings act as
        # negatives and gradients flow back to the process that produced them.
        gathered = self.all_gather(z, sync_grads=True)
        return gathered.reshape(-1, *z.shape[1:]) if gathered.dim() == z.dim() + 1 else gathered

    def training_step(self, batch, batch_idx):
        """Training step; sets the DDP gather function for the loss when more than one process runs."""
        try:
            world = self.trainer.world_size
        except RuntimeError:  # Lightning raises when the module is not attached to a Trainer (a direct call)
            world = 1
        if self.gather_negatives and world > 1:
            self.loss_kwargs["gather"] = self._gather
        else:
            self.loss_kwargs.pop("gather", None)
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        """Validation step on each process's own minibatch (no gathering)."""
        gather = self.loss_kwargs.pop("gather", None)
        try:
            return super().validation_step(batch, batch_idx)
        finally:
            if gather is not None:
                self.loss_kwargs["gather"] = gather

    def compute_and_log_metrics(self, loss_output, metrics, mode):
        """Log the module's loss parts (``infonce``, ``cosine_loss``, ... as ``<name>_<mode>``) under ``no_grad``.

        scvi-tools' plan also logs ELBO, reconstruction and KL metrics, which are always zero for this model, so
        they are left out of the history. scvi-tools runs this under ``torch.inference_mode``, which breaks CPU
        DDP (gloo) with "Inplace update to inference tensor outside InferenceMode".
        """
        with torch.no_grad():
            for key, value in loss_output.extra_metrics.items():
                if isinstance(value, torch.Tensor) and value.dim() != 0:
                    continue  # only scalars are logged, as in scvi-tools
                self.log(
                    f"{key}_{mode}",
                    value.detach() if isinstance(value, torch.Tensor) else value,
                    on_step=self.on_step,
                    on_epoch=self.on_epoch,
                    batch_size=loss_output.n_obs_minibatch,
                    sync_dist=self.use_sync_dist,
                )

    def configure_optimizers(self):
        """AdamW on two parameter groups (with/without weight decay) and a per-step warm-up + cosine schedule."""
        decay, no_decay = [], []
        for name, p in self.module.named_parameters():
            if not p.requires_grad:
                continue
            if getattr(p, "_no_weight_decay", False) or p.ndim < 2 or "norm" in name:
                no_decay.append(p)
            else:
                decay.append(p)
        groups = [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=self.lr, eps=self.eps)
        stepping = self.trainer.estimated_stepping_batches
        if math.isinf(stepping):  # max_epochs=-1 (Lightning's "no limit"): no length for the cosine decay
            if self.trainer.early_stopping_callback is None:
                raise ValueError(
                    "max_epochs=-1 trains without a limit, and nothing would stop it: pass early_stopping=True "
                    "(it then trains until validation_loss stops improving), or a number of epochs."
                )
            # warm-up over the first epoch, then the peak learning rate until early stopping ends training
            per_epoch = self.trainer.num_training_batches
            warmup = int(self.warmup_fraction * per_epoch) if math.isfinite(per_epoch) else 0
            total = None
        else:
            total = max(int(stepping), 1)
            warmup = int(self.warmup_fraction * total)
        floor = self.min_lr_ratio

        def lr_lambda(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            if total is None:
                return 1.0
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
