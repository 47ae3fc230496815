"""The data layer: readers for the published layouts, the shared taxonomy, synthetic data,
decoding cache, augmentation pipelines and PyTorch loaders."""

from .readers import dataset_summary, scan_dataset
from .sources import resolve_data_source
from .taxonomy import taxonomy_table

__all__ = ["dataset_summary", "resolve_data_source", "scan_dataset", "taxonomy_table"]
