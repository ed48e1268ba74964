"""Adapter-only fine-tuning with cached prefix features.

Both models are frozen in eval mode (BatchNorm statistics frozen). The front model's prefix features and its logits
(for distillation) are computed once per split and cached, so each epoch runs only adapter + back suffix. The best
state on the validation split is kept, the least-squares initialisation (epoch 0) included, so tuning never returns a
worse adapter than it started from.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from restnet_compile.data import Dataset
from restnet_compile.stitch.net import StitchedNet
from restnet_compile.zoo.blocks import BlockSequence


@dataclass(frozen=True)
class TuneConfig:
    """Fine-tuning hyper-parameters.

    Attributes:
        epochs: Largest number of passes over the training split.
        lr: Adam learning rate for the adapter.
        batch_size: Minibatch size.
        distill_weight: Weight of the KL term towards the front model's logits (0 disables it).
        temperature: Distillation temperature.
        patience: Epochs without validation gain before stopping.
        adapter: Adapter for map -> map joins (``auto``: the planned ``conv1x1``); see ``stitch.adapters``.
        recipe: Tuning recipe name (see ``stitch.recipes``).
        match_epochs: Feature-matching passes of recipes that match the back model's activations.
        match_lr: Adam learning rate of feature matching.
    """

    epochs: int = 10
    lr: float = 2e-3
    batch_size: int = 64
    distill_weight: float = 0.8
    temperature: float = 2.0
    patience: int = 4
    adapter: str = "conv-bn-relu"
    recipe: str = "ls+feature-match+distill"
    match_epochs: int = 3
    match_lr: float = 3e-3


@dataclass(frozen=True)
class CachedSplit:
    """Prefix features, teacher logits and labels of one split."""

    feats: torch.Tensor
    teacher: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class TuneResult:
    """What tuning did: accuracy after init and after tuning (validation split), epochs run, best epoch."""

    val_accuracy_init: float
    val_accuracy: float
    epochs_run: int
    best_epoch: int


@torch.no_grad()
def cache_split(net: StitchedNet, teacher: torch.nn.Module, ds: Dataset, batch: int = 250) -> CachedSplit:
    """Run the frozen prefix (and the teacher) once over ``ds``."""
    feats, logits = [], []
    for i in range(0, len(ds), batch):
        x = torch.from_numpy(ds.images[i : i + batch])
        feats.append(net.prefix(x))
        logits.append(teacher(x))
    return CachedSplit(torch.cat(feats), torch.cat(logits), torch.from_numpy(ds.labels))


@torch.no_grad()
def cache_cuts(
    front: BlockSequence, teacher: torch.nn.Module, cuts: set[int], ds: Dataset, batch: int = 250
) -> dict[int, CachedSplit]:
    """Prefix features at every cut in ``cuts`` and the teacher's logits, from ONE pass over ``ds``.

    When the teacher is the front model (large prefix -> small suffix) its logits come from the same pass, so the
    caching cost of all candidates together is one forward of the large model.
    """
    feats: dict[int, list[torch.Tensor]] = {i: [] for i in cuts}
    logits = []
    for k in range(0, len(ds), batch):
        x = torch.from_numpy(ds.images[k : k + batch])
        outs = front.block_outputs(x)
        for i in cuts:
            feats[i].append(outs[i])
        logits.append(front.head(outs[-1]) if teacher is front else teacher(x))
    labels, teach = torch.from_numpy(ds.labels), torch.cat(logits)
    return {i: CachedSplit(torch.cat(f), teach, labels) for i, f in feats.items()}


@torch.no_grad()
def cached_accuracy(net: StitchedNet, split: CachedSplit, batch: int = 250) -> float:
    """Accuracy of ``net`` on cached prefix features."""
    net.eval()
    correct = sum(
        int((net.from_prefix(split.feats[i : i + batch]).argmax(1) == split.labels[i : i + batch]).sum())
        for i in range(0, len(split.labels), batch)
    )
    return correct / len(split.labels)


def _loss(net: StitchedNet, split: CachedSplit, idx: torch.Tensor, cfg: TuneConfig) -> torch.Tensor:
    logits = net.from_prefix(split.feats[idx])
    loss = F.cross_entropy(logits, split.labels[idx])
    if cfg.distill_weight > 0:
        t = cfg.temperature
        kd = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(split.teacher[idx] / t, 1), reduction="batchmean")
        loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * kd * t * t
    return loss


def tune_adapter(net: StitchedNet, train: CachedSplit, val: CachedSplit, cfg: TuneConfig, seed: int) -> TuneResult:
    """Fine-tune ``net.adapter`` alone; leave ``net`` holding the best adapter on ``val``."""
    frozen = [p for name, p in net.named_parameters() if not name.startswith("adapter.") and p.requires_grad]
    if frozen:
        raise ValueError("tune_adapter needs frozen donor models (create_model freezes them)")
    for p in net.adapter.parameters():
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.adapter.parameters(), lr=cfg.lr)
    best_acc = init_acc = cached_accuracy(net, val)
    best_state, best_epoch, epoch = copy.deepcopy(net.adapter.state_dict()), 0, 0
    for epoch in range(1, cfg.epochs + 1):
        net.eval()  # frozen BatchNorm statistics in the suffix; the adapter has no norm layers
        order = torch.randperm(len(train.labels), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            loss = _loss(net, train, order[i : i + cfg.batch_size], cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = cached_accuracy(net, val)
        if acc > best_acc:
            best_acc, best_state, best_epoch = acc, copy.deepcopy(net.adapter.state_dict()), epoch
        elif epoch - best_epoch >= cfg.patience:
            break
    net.adapter.load_state_dict(best_state)
    for p in net.adapter.parameters():
        p.requires_grad_(False)
    return TuneResult(round(init_acc, 4), round(best_acc, 4), epoch, best_epoch)
