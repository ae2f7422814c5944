"""AI Mask and Exhaustivity verifiers (Llama 3.2 Vision + one LoRA adapter per task): a plain library, no Django.

- ``verifiers.options``: the MV and EV options (the platform's verdict values) and their letters;
- ``verifiers.prompts`` + ``verifiers/prompts/*.v<N>.md``: the versioned question templates;
- ``verifiers.render``: the images the verifiers see (MV side-by-side composite, EV boxes);
- ``verifiers.model``: ``Verifier`` (``score_mv`` / ``score_ev``: softmax over the option-letter logits, after the
  calibrated temperature), ``load_verifier`` (folder or ``s3://``, sha256-checked), ``build_tiny_verifier``;
- ``verifiers.calibration``: temperature, auto-accept thresholds at a target precision, the held-out report;
- ``verifiers.training`` / ``python -m verifiers.train``: supervised fine-tuning from MV/EV verdicts;
- ``verifiers.synthetic``: examples from the synthetic world labelled by the simulated annotator's rules;
- ``python -m verifiers.compare``: cgF1 of SAM 3 alone versus with EV presence and MV filtering.

The Celery task ``verifiers.verify_datapoint.v1`` lives in ``workers/verifiers.py``. Imports here are light:
torch, transformers and peft load with ``verifiers.model``.
"""
