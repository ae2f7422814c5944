"""SAM 3 training for promptable concept segmentation: PCS loss, datasets, trainer, LoRA adapters.

See docs/data-engine.md §10 for the recipe this follows.
"""
