"""Datasets (built-in arrays, or file sources read per batch) with fixed, seeded splits."""

from restnet_compile.data.dataset import DATASETS, Dataset, Images, Splits, load_dataset, make_splits, split_sizes

__all__ = ["DATASETS", "Dataset", "Images", "Splits", "load_dataset", "make_splits", "split_sizes"]
