"""AI Mask and Exhaustivity verifiers (Llama 3.2 Vision + LoRA): a plain library, no Django.

Not built yet: Phase 1 routes every item to humans. See docs/architecture.md.
"""
