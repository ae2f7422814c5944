"""SAM 3 (transformers ``Sam3Model``): presets and checkpoints (build.py), the offline tokenizer
(tokenizer.py) and the concept predictor (predictor.py). Import the submodules; this package
imports nothing heavy itself.
"""

# Masks of one phrase overlapping more than this are one instance seen twice: the engine's and model.predict's
# default (on a synthetic validation world, 0.3-0.9 scored within 0.3 cgF1 of each other; 0.7 keeps overlapping
# real objects apart).
DEFAULT_DEDUPE_IOU = 0.7
