"""SAM 3 (transformers ``Sam3Model``): presets and checkpoints (build.py), the offline tokenizer
(tokenizer.py) and the concept predictor (predictor.py). Import the submodules; this package
imports nothing heavy itself.
"""

# Masks of one phrase overlapping more than this are one instance seen twice: the engine's and model.predict's
# default (on held-out synthetic gold, any value in 0.3-0.9 scored the same).
DEFAULT_DEDUPE_IOU = 0.7
