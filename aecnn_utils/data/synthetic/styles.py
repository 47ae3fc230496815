"""Style tables of the synthetic renderer: how each dataset looks and what each cell type is.

Nothing here draws; :mod:`.cells` samples cells from these tables and :mod:`.render` paints them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class DomainStyle:
    """How one dataset is rendered (its "scanner and staining lab")."""

    hue_shift_deg: float  # rotation of every stain's hue
    saturation: float  # multiplier on stain saturation
    stain_density: float  # multiplier on optical density (darker, more saturated stains > 1)
    background_rgb: tuple[int, int, int]  # empty-glass colour
    blur_sigma: float  # optics blur, pixels
    noise_sigma: float  # sensor noise, grey levels
    px_per_um: float  # pixel scale (the cell-size table is in micrometres)
    margin: float  # single-cell crops: margin around the cell, fraction of its extent
    crop_range: tuple[int, int]  # single-cell crops: (min, max) side in pixels
    neighbour_p: float  # probability of a neighbouring cell poking in at an edge
    neutrophil_p: float  # probability of background neutrophils


#: Per-dataset rendering table. SIPaKMeD is the reference; Herlev is warmer, paler and softer
#: (older CCD, cells fill more of the image); CRIC is darker, more saturated and bluish, sharper,
#: drawn on large fields (pixel scale relative to the real 1376x1020 fields, shrunk for small ones).
DOMAIN_STYLES: dict[str, DomainStyle] = {
    "sipakmed": DomainStyle(
        hue_shift_deg=0.0, saturation=1.00, stain_density=1.00, background_rgb=(224, 229, 236),
        blur_sigma=0.8, noise_sigma=2.0, px_per_um=2.2,
        margin=0.14, crop_range=(70, 160), neighbour_p=0.35, neutrophil_p=0.20,
    ),
    "herlev": DomainStyle(
        hue_shift_deg=12.0, saturation=0.78, stain_density=0.88, background_rgb=(238, 234, 226),
        blur_sigma=1.3, noise_sigma=3.0, px_per_um=3.4,
        margin=0.04, crop_range=(80, 200), neighbour_p=0.25, neutrophil_p=0.10,
    ),
    "cric": DomainStyle(
        hue_shift_deg=-8.0, saturation=1.30, stain_density=1.22, background_rgb=(206, 214, 228),
        blur_sigma=0.6, noise_sigma=2.5, px_per_um=2.6,
        margin=0.0, crop_range=(100, 100), neighbour_p=0.0, neutrophil_p=0.30,
    ),
}

#: Transmitted colour (RGB, 0-255) of each Papanicolaou stain at optical-density multiplier 1.
STAINS: dict[str, tuple[int, int, int]] = {
    "cyan": (150, 205, 200),  # cyanophilic, mature intermediate cells
    "cyan_dense": (112, 172, 178),  # cyanophilic, immature / dysplastic cells
    "pink": (246, 158, 172),  # eosinophilic, superficial cells
    "orange": (246, 146, 72),  # orangeophilic, keratinised cells
    "nucleus": (80, 52, 128),  # haematoxylin
}


@dataclass(frozen=True, kw_only=True)
class Morphology:
    """Cell archetype: ranges sampled per cell (sizes in micrometres).

    Every ``(low, high)`` pair is a range that one value per cell is drawn from, uniformly.
    """

    cyt_r: tuple[float, float]  # equivalent cytoplasm radius sqrt(area / pi)
    aspect: tuple[float, float]  # cytoplasm long / short axis
    shape: str  # polygon | round | spider | columnar | bizarre
    cyt_irreg: float  # amplitude of low-frequency border irregularity
    palette: tuple[str, ...]  # cytoplasm stains (one drawn per cell)
    cyt_density: tuple[float, float]  # cytoplasm optical-density multiplier
    nc: tuple[float, float]  # nucleus radius / cytoplasm radius (N/C area ratio = nc**2)
    nuc_aspect: tuple[float, float]
    nuc_irreg: float  # nuclear border irregularity
    nuc_density: tuple[float, float]  # hyperchromasia
    fine: float  # fine granular chromatin amplitude
    coarse: float  # coarse clumped chromatin amplitude
    halo_p: float = 0.0  # probability of a perinuclear halo
    halo_ratio: tuple[float, float] = (1.8, 2.4)  # halo radius / nucleus radius
    binuc_p: float = 0.0  # probability of two nuclei
    nucleoli_p: float = 0.0  # probability of visible nucleoli
    folds: int = 0  # maximum number of cytoplasmic folds


#: Cell archetypes. Datasets map their classes onto mixtures of these (:data:`CLASS_ARCHETYPES`).
MORPHOLOGY: dict[str, Morphology] = {
    "superficial": Morphology(
        cyt_r=(22, 30), aspect=(1.0, 1.5), shape="polygon", cyt_irreg=0.06,
        palette=("pink", "pink", "cyan"), cyt_density=(0.55, 0.8), folds=2,
        nc=(0.07, 0.10), nuc_aspect=(1.0, 1.15), nuc_irreg=0.02, nuc_density=(1.9, 2.3),
        fine=0.05, coarse=0.0,
    ),
    "intermediate": Morphology(
        cyt_r=(18, 25), aspect=(1.0, 1.5), shape="polygon", cyt_irreg=0.06,
        palette=("cyan",), cyt_density=(0.6, 0.85), folds=2,
        nc=(0.14, 0.20), nuc_aspect=(1.0, 1.25), nuc_irreg=0.03, nuc_density=(0.9, 1.1),
        fine=0.22, coarse=0.1,
    ),
    "parabasal": Morphology(
        cyt_r=(8, 12), aspect=(1.0, 1.3), shape="round", cyt_irreg=0.05,
        palette=("cyan_dense",), cyt_density=(0.95, 1.2),
        nc=(0.34, 0.46), nuc_aspect=(1.0, 1.25), nuc_irreg=0.03, nuc_density=(1.0, 1.2),
        fine=0.22, coarse=0.15,
    ),
    "metaplastic": Morphology(
        cyt_r=(9, 14), aspect=(1.0, 1.5), shape="spider", cyt_irreg=0.10,
        palette=("cyan_dense",), cyt_density=(1.05, 1.35),
        nc=(0.30, 0.42), nuc_aspect=(1.0, 1.3), nuc_irreg=0.04, nuc_density=(1.05, 1.25),
        fine=0.22, coarse=0.15,
    ),
    "columnar": Morphology(
        cyt_r=(7, 10), aspect=(2.2, 3.4), shape="columnar", cyt_irreg=0.04,
        palette=("cyan",), cyt_density=(0.7, 0.9),
        nc=(0.28, 0.36), nuc_aspect=(1.3, 1.7), nuc_irreg=0.03, nuc_density=(1.05, 1.25),
        fine=0.2, coarse=0.15,
    ),
    "koilocyte": Morphology(
        cyt_r=(15, 22), aspect=(1.0, 1.5), shape="polygon", cyt_irreg=0.06,
        palette=("cyan", "cyan", "pink"), cyt_density=(0.95, 1.25),
        nc=(0.20, 0.27), nuc_aspect=(1.0, 1.4), nuc_irreg=0.08, nuc_density=(1.3, 1.6),
        fine=0.25, coarse=0.35, halo_p=1.0, halo_ratio=(1.9, 2.7), binuc_p=0.3,
    ),
    "dyskeratotic": Morphology(
        cyt_r=(7, 12), aspect=(1.0, 1.7), shape="round", cyt_irreg=0.10,
        palette=("orange",), cyt_density=(1.15, 1.5),
        nc=(0.18, 0.28), nuc_aspect=(1.0, 1.3), nuc_irreg=0.04, nuc_density=(1.8, 2.3),
        fine=0.05, coarse=0.1, binuc_p=0.1,
    ),
    "mild": Morphology(
        cyt_r=(15, 21), aspect=(1.0, 1.5), shape="polygon", cyt_irreg=0.06,
        palette=("cyan", "cyan", "pink"), cyt_density=(0.8, 1.0),
        nc=(0.26, 0.34), nuc_aspect=(1.0, 1.35), nuc_irreg=0.06, nuc_density=(1.2, 1.45),
        fine=0.25, coarse=0.3, halo_p=0.3, binuc_p=0.12,
    ),
    "moderate": Morphology(
        cyt_r=(11, 16), aspect=(1.0, 1.4), shape="round", cyt_irreg=0.08,
        palette=("cyan_dense",), cyt_density=(0.9, 1.15),
        nc=(0.40, 0.50), nuc_aspect=(1.0, 1.35), nuc_irreg=0.09, nuc_density=(1.4, 1.6),
        fine=0.25, coarse=0.5,
    ),
    "severe": Morphology(
        cyt_r=(8, 12), aspect=(1.0, 1.4), shape="round", cyt_irreg=0.09,
        palette=("cyan_dense",), cyt_density=(0.95, 1.2),
        nc=(0.55, 0.68), nuc_aspect=(1.0, 1.4), nuc_irreg=0.12, nuc_density=(1.55, 1.8),
        fine=0.25, coarse=0.7, nucleoli_p=0.2,
    ),
    "cis": Morphology(
        cyt_r=(6.5, 9.5), aspect=(1.0, 1.4), shape="round", cyt_irreg=0.10,
        palette=("cyan_dense",), cyt_density=(1.0, 1.25),
        nc=(0.70, 0.84), nuc_aspect=(1.0, 1.45), nuc_irreg=0.14, nuc_density=(1.7, 2.0),
        fine=0.25, coarse=0.85, nucleoli_p=0.4,
    ),
    "ascus": Morphology(
        cyt_r=(15, 22), aspect=(1.0, 1.5), shape="polygon", cyt_irreg=0.06,
        palette=("cyan", "cyan", "pink"), cyt_density=(0.7, 0.95),
        nc=(0.20, 0.28), nuc_aspect=(1.0, 1.3), nuc_irreg=0.04, nuc_density=(1.1, 1.3),
        fine=0.25, coarse=0.2, halo_p=0.15, halo_ratio=(1.5, 1.9), binuc_p=0.08,
    ),
    "asch": Morphology(
        cyt_r=(8, 12), aspect=(1.0, 1.35), shape="round", cyt_irreg=0.07,
        palette=("cyan_dense",), cyt_density=(0.95, 1.2),
        nc=(0.45, 0.58), nuc_aspect=(1.0, 1.35), nuc_irreg=0.08, nuc_density=(1.35, 1.6),
        fine=0.25, coarse=0.5,
    ),
    "hsil": Morphology(
        cyt_r=(7, 10.5), aspect=(1.0, 1.45), shape="round", cyt_irreg=0.10,
        palette=("cyan_dense",), cyt_density=(1.0, 1.25),
        nc=(0.60, 0.78), nuc_aspect=(1.0, 1.45), nuc_irreg=0.12, nuc_density=(1.6, 1.9),
        fine=0.25, coarse=0.75, nucleoli_p=0.2,
    ),
    "scc": Morphology(
        cyt_r=(9, 16), aspect=(1.6, 4.0), shape="bizarre", cyt_irreg=0.22,
        palette=("orange", "orange", "cyan_dense"), cyt_density=(1.2, 1.6),
        nc=(0.42, 0.62), nuc_aspect=(1.1, 1.8), nuc_irreg=0.20, nuc_density=(1.9, 2.3),
        fine=0.3, coarse=0.9, nucleoli_p=0.5,
    ),
    "neutrophil": Morphology(
        cyt_r=(4.0, 5.0), aspect=(1.0, 1.2), shape="round", cyt_irreg=0.04,
        palette=("cyan",), cyt_density=(0.25, 0.4),
        nc=(0.2, 0.2), nuc_aspect=(1.0, 1.0), nuc_irreg=0.0, nuc_density=(1.6, 1.9),
        fine=0.05, coarse=0.0,
    ),
}

#: Each publisher class (:data:`CLASSES` of :mod:`.layouts`) as a mixture of archetypes
#: ``{archetype: weight}``.
CLASS_ARCHETYPES: dict[str, dict[str, dict[str, float]]] = {
    "sipakmed": {
        # generator version 1 drew these rows in reverse class order (Superficial-Intermediate
        # as dyskeratotic cells, Parabasal as koilocytes, and back): fixed in version 2
        "Superficial-Intermediate": {"superficial": 0.5, "intermediate": 0.5},
        "Parabasal": {"parabasal": 1.0},
        "Metaplastic": {"metaplastic": 1.0},
        "Koilocytotic": {"koilocyte": 1.0},
        "Dyskeratotic": {"dyskeratotic": 1.0},
    },
    "herlev": {
        "normal_superficiel": {"superficial": 1.0},
        "normal_intermediate": {"intermediate": 1.0},
        "normal_columnar": {"columnar": 1.0},
        "light_dysplastic": {"mild": 1.0},
        "moderate_dysplastic": {"moderate": 1.0},
        "severe_dysplastic": {"severe": 1.0},
        "carcinoma_in_situ": {"cis": 1.0},
    },
    "cric": {
        "Negative for intraepithelial lesion": {"superficial": 0.4, "intermediate": 0.45,
                                                "parabasal": 0.15},
        "ASC-US": {"ascus": 1.0},
        "LSIL": {"koilocyte": 0.6, "mild": 0.4},
        "ASC-H": {"asch": 1.0},
        "HSIL": {"hsil": 1.0},
        "SCC": {"scc": 1.0},
    },
}

#: Archetypes of the neighbouring cells that poke into single-cell crops.
NEIGHBOUR_ARCHETYPES: tuple[str, ...] = ("intermediate", "superficial", "parabasal")
