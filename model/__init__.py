"""SAM 3 as a plain library: building and loading models, proposing masks, the synthetic world, RLE helpers.

No Django imports here: the platform and the workers both use this package.
"""
