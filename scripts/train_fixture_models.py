"""Train the test fixture models on normalised digits and save them as their owners would, in the repository.

    python scripts/train_fixture_models.py [--steps N] [--only KEY ...]

Writes ``tests/fixtures/user_models/trained/``: ``.pth`` state dicts for most models, a ``.safetensors`` file for
the residual CNN and, for the timm model, a folder in the timm / Hugging Face layout (``model.safetensors`` plus
``config.json`` with its ``pretrained_cfg``). Each model is trained with Adam on the mnist5k training split (the
build's own split at seed 0) normalised with mean 0.1307 / std 0.3081, on one torch thread, from a fixed seed; the
accuracy on the test split is printed and written to ``trained/accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.unit.fixture_models import DIGIT_STATS, SPECS, TRAINED, raw_model, trained_path  # noqa: E402

MEAN, STD = DIGIT_STATS["mean"][0], DIGIT_STATS["std"][0]


def _logits(out: object) -> torch.Tensor:
    """The logits of each fixture's output: the dict's "logits", the tuple's first element, else the tensor."""
    if isinstance(out, dict):
        return out["logits"]
    if isinstance(out, tuple):
        return out[0]
    assert isinstance(out, torch.Tensor)
    return out


def train(key: str, steps: int) -> tuple[dict[str, torch.Tensor], float]:
    """Train fixture ``key`` for ``steps`` Adam steps (cosine-decayed rate); its state dict and test accuracy."""
    from restnet_compile.data import load_dataset, make_splits, split_sizes

    ds = load_dataset("mnist5k")
    splits = make_splits(ds, 0, *split_sizes(len(ds)))
    x = (torch.from_numpy(splits.train.images.copy()) - MEAN) / STD
    y = torch.from_numpy(splits.train.labels.copy())
    torch.manual_seed(list(SPECS).index(key))
    model = raw_model(key)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(_logits(model(x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    tx = (torch.from_numpy(splits.test.images.copy()) - MEAN) / STD
    with torch.no_grad():
        pred = torch.cat([_logits(model(tx[k : k + 256])).argmax(1) for k in range(0, len(tx), 256)])
    accuracy = float((pred == torch.from_numpy(splits.test.labels.copy())).float().mean())
    return {k: v.contiguous() for k, v in model.state_dict().items()}, accuracy


def save(key: str, state: dict[str, torch.Tensor]) -> Path:
    """Write ``state`` where and how the fixture's owner would (see :func:`trained_path`)."""
    path = trained_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    if key == "timm":
        path.mkdir(exist_ok=True)
        save_file(state, str(path / "model.safetensors"))
        arch = SPECS[key].removeprefix("timm:")
        config = {"architecture": arch, "num_classes": 10, "pretrained_cfg": {**DIGIT_STATS}}
        (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    elif path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--only", nargs="*", choices=list(SPECS), default=list(SPECS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    report_path = TRAINED / "accuracy.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    for key in args.only:
        state, accuracy = train(key, args.steps)
        path = save(key, state)
        report[key] = {
            "spec": SPECS[key].replace(f"{ROOT}/", ""),
            "file": path.name,
            "steps": args.steps,
            "test_accuracy": round(accuracy, 4),
        }
        print(f"{key}: {accuracy:.2%} on the mnist5k test split -> {path.relative_to(ROOT)}", flush=True)
        report_path.write_text(json.dumps(dict(sorted(report.items())), indent=2) + "\n")


if __name__ == "__main__":
    main()
