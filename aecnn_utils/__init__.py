"""aecnn-kit: reproducibility kit for "A Lightweight Attention-Enhanced CNN for Cervical Cell
Classification" (AECNN). All logic of the notebooks lives in this package."""

import os as _os

# Albumentations checks PyPI for a newer release at import; the kit must work offline.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
