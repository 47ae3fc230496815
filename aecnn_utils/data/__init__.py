"""The data layer: readers for the published layouts, the shared taxonomy, synthetic data,
decoding cache, augmentation pipelines and PyTorch loaders."""

from .cache import CachedImages, cache_images, default_cache_dir, square_resize
from .errors import (
    CorruptImageError,
    DataError,
    DatasetNotFoundError,
    DataWarning,
    LabelError,
    LayoutError,
)
from .images import load_image
from .loaders import CellDataset, make_loader
from .readers import dataset_summary, detect_layout, scan_dataset
from .sources import DataSource, resolve_data_source
from .taxonomy import SCHEMES, class_names, map_label, taxonomy_table
from .transforms import (
    AugmentConfig,
    NormStats,
    build_eval_transform,
    build_train_transform,
    compute_norm_stats,
)

__all__ = [
    "SCHEMES",
    "AugmentConfig",
    "CachedImages",
    "CellDataset",
    "CorruptImageError",
    "DataError",
    "DataSource",
    "DataWarning",
    "DatasetNotFoundError",
    "LabelError",
    "LayoutError",
    "NormStats",
    "build_eval_transform",
    "build_train_transform",
    "cache_images",
    "class_names",
    "compute_norm_stats",
    "dataset_summary",
    "default_cache_dir",
    "detect_layout",
    "load_image",
    "make_loader",
    "map_label",
    "resolve_data_source",
    "scan_dataset",
    "square_resize",
    "taxonomy_table",
]
