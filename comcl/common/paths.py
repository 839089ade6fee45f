"""Artifact paths of the pipeline (DESIGN §2), relative to the repository root."""
PARAMS = "params.yaml"

PREPARED = "data/prepared"
DEGRADED = "data/degraded"
SPLITS = "data/splits"
PATCHES = "data/patches"
MODELS = "models"
METRICS = "metrics"
PLOTS = "plots"

MANIFEST = "manifest.parquet"
DATASET_INFO = "dataset.json"
IMAGES = "images"
AUX = "aux"
AUX_BOXES = "boxes.parquet"

SUBSETS = ("HL", "LL", "HH", "LH")
