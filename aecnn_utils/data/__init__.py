"""The data layer: readers for the published layouts, the shared taxonomy, synthetic data,
decoding cache, augmentation pipelines and PyTorch loaders."""

from aecnn_utils.data.readers import scan_dataset
from aecnn_utils.data.sources import resolve_data_source
from aecnn_utils.data.taxonomy import dataset_summary, taxonomy_table

__all__ = ["dataset_summary", "resolve_data_source", "scan_dataset", "taxonomy_table"]
