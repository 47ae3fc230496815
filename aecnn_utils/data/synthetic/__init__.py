"""Synthetic Pap-smear cell images in the published layouts of SIPaKMeD, Herlev and CRIC Cervix.

**This is not real data.** Every image written here is drawn by a small procedural renderer; no
pixel comes from a patient or from the published datasets, and any number computed on these images
is *not* a result of the paper. A ``SYNTHETIC.txt`` marker is written into every generated dataset
root (see :func:`is_synthetic`) so that readers, notebooks and reports can say so.

Why it exists
    The real datasets need a manual download (and, for some, a registration). The kit's readers,
    trainer and notebooks must still run end to end on a fresh offline machine, and its tests must
    exercise the exact file layouts the readers parse. This package writes small, deterministic
    image sets in those layouts.

What it draws
    Each cell is rendered in optical density (Beer-Lambert): a light, slightly uneven background is
    attenuated by stained cytoplasm and nuclei, so overlapping cells darken each other as they do
    under a microscope. A cell has an irregular closed cytoplasm (a smoothed, jittered polygon for
    mature squamous cells; a perturbed ellipse, a spiky "spider" shape, a tapered column or a
    bizarre shape otherwise) with low-frequency density texture, a denser rim and, for mature
    cells, folds; one or two nuclei with granular or coarse clumped chromatin and a darker nuclear
    membrane; optionally a perinuclear halo (koilocytosis) with a condensed rim. Stains follow the
    Papanicolaou scheme: cyanophilic (blue-green) cytoplasm for intermediate, parabasal,
    metaplastic and most dysplastic cells, eosinophilic (pink) for superficial cells, orangeophilic
    (orange) for keratinised cells (dyskeratocytes, some carcinoma cells), haematoxylin blue-purple
    nuclei. Optics blur and sensor noise are added last. Neighbouring cells may poke in at the
    image edges and a few neutrophils may lie in the background.

    Class morphology follows the cytology (table :data:`MORPHOLOGY`): mature squamous cells are
    large and flat with small pyknotic or vesicular nuclei (low N/C ratio); parabasal, metaplastic
    and columnar cells are smaller with moderate N/C; koilocytes/LSIL/ASC-US have enlarged, mildly
    irregular, sometimes double nuclei and perinuclear halos; dyskeratocytes are small orange cells
    with dense nuclei; moderate/severe dysplasia, ASC-H, HSIL, carcinoma in situ and SCC have a
    rising N/C ratio, irregular nuclear borders, coarse chromatin and hyperchromasia, SCC with
    bizarre cell shapes. The class is learnable from the image; within-class variation is large.

    Each dataset also gets its own rendering style (table :data:`DOMAIN_STYLES`: stain hue,
    saturation and density, background tone, blur, noise and pixel scale), so a cross-dataset
    protocol has a domain gap to show.

Layouts written (what the readers in :mod:`aecnn_utils.data.readers` parse)
    SIPaKMeD
        ``root/im_<Class>/im_<Class>/CROPPED/NNN_MM.bmp``: cell ``MM`` (01..) of cluster image
        ``NNN`` (001..), 2-5 cells per cluster; beside ``CROPPED/``, the cluster images
        ``NNN.bmp`` (256x192) and contour files ``NNN_cytMM.dat`` / ``NNN_nucMM.dat`` (one ``x,y``
        point per line, in cluster-image pixels).
    Herlev
        ``root/<class>/<slide>-<image>-<NNN>.BMP`` (9-digit slide number, the split group, 2-4
        cells per slide; 9-digit image number; 3-digit cell index) and, per cell, the colour-coded
        segmentation ``<same stem>-d.bmp`` (colours: :data:`HERLEV_MASK_COLORS`).
    CRIC Cervix, ``cric_layout="official"``
        ``root/classifications.csv`` (columns :data:`CRIC_CSV_COLUMNS`), the equivalent
        ``root/classifications.json`` and the field images ``root/base/<image_filename>`` (PNG of
        ``field_size``), 3-6 cells of mixed classes per field, some near the border.
    CRIC Cervix, ``cric_layout="cropped"``
        ``root/<Bethesda class>/<image_id>_<cell_id>.png``: 100x100 crops centred on each nucleus
        (shifted to stay inside the field, as the reader's crop box is), cut from the same fields.

The same (dataset, n_per_class, seed, options) gives byte-identical files (every cell and layout
draws from its own keyed generator; :mod:`.layouts`); a dataset is written into a temporary
sibling folder and renamed into place (:mod:`.install`).
"""

from aecnn_utils.data.readers import CRIC_CSV_COLUMNS
from aecnn_utils.data.synthetic.install import generate_all, generate_dataset
from aecnn_utils.data.synthetic.layouts import CLASSES, CRIC_CROP_SIZE, CRIC_LAYOUTS, HERLEV_MASK_COLORS
from aecnn_utils.data.synthetic.marker import GENERATOR_VERSION, MARKER_NAME, SYNTHETIC_NOTICE, is_synthetic

__all__ = ["CLASSES", "CRIC_CROP_SIZE", "CRIC_CSV_COLUMNS", "CRIC_LAYOUTS", "GENERATOR_VERSION",
           "HERLEV_MASK_COLORS", "MARKER_NAME", "SYNTHETIC_NOTICE", "generate_all",
           "generate_dataset", "is_synthetic"]
