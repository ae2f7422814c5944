"""SAM 3 (transformers ``Sam3Model``): presets and checkpoints (build.py), the offline tokenizer
(tokenizer.py) and the concept predictor (predictor.py). Import the submodules; this package
imports nothing heavy itself.
"""
