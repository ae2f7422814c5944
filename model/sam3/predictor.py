"""Concept prompts -> instance masks: encode an image once, then run all its noun phrases on the features.

Scores follow SAM 3: score = sigmoid(query logit) x sigmoid(presence logit); masks are sigmoid(mask
logits) upsampled bilinearly to the original image size and cut at ``mask_threshold`` (the same
computation as ``Sam3Processor.post_process_instance_segmentation``, done one kept instance at a time
so memory stays bounded on large images). Optionally, a mask that overlaps a better-scored one of the same
phrase by more than ``dedupe_iou`` is dropped (the data engine deduplicates masks by IoU: two masks of one
object are one instance). Masks travel as COCO compressed RLE.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image
from transformers import Sam3Model, Sam3Processor
from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

from model import rle as rle_utils
from model.sam3.build import LoadedModel
from model.sam3.tokenizer import MAX_TEXT_TOKENS


@dataclass
class Instance:
    """One predicted instance: mask (RLE at the original image size), box in original pixels, score in [0, 1].

    ``query_score`` is the instance's own sigmoid(query logit), before the phrase's presence multiplies it
    (score = query_score x presence_score); it is not part of ``to_json``. ``refined`` is set where the click
    tracker drew the mask again (model.sam3.refine): which tracker, from which click.
    """

    rle: dict
    box_xyxy: list[float]
    score: float
    query_score: float | None = field(default=None, compare=False)
    refined: dict | None = None

    def to_json(self) -> dict:
        out = {"rle": self.rle, "box_xyxy": self.box_xyxy, "score": self.score}
        if self.refined is not None:
            out["refined"] = self.refined
        return out


@dataclass
class PhraseProposal:
    """Everything proposed for one phrase; ``truncated`` when the phrase exceeded 32 tokens and was cut.
    ``best_beyond_cap``: the score of the best instance that ``max_instances`` left out (not empty, not a duplicate
    of a kept one; 0.0 where none): a strong one says the kept instances may not be all of them. ``semantic_rle``:
    SAM 3's semantic (phrase) mask at the original size, cut at the mask threshold: where it says the phrase is,
    instance or not (a region of it no accepted mask covers says an instance may be missing)."""

    phrase: str
    presence_score: float
    instances: list[Instance] = field(default_factory=list)
    truncated: bool = False
    best_beyond_cap: float = 0.0
    semantic_rle: dict | None = None

    def to_json(self) -> dict:
        out = {
            "phrase": self.phrase,
            "presence_score": self.presence_score,
            "instances": [instance.to_json() for instance in self.instances],
            "truncated": self.truncated,
            "best_beyond_cap": self.best_beyond_cap,
        }
        if self.semantic_rle is not None:
            out["semantic_rle"] = self.semantic_rle
        return out


def check_phrases(phrases: list[str]) -> list[str]:
    """The phrases stripped; ValueError for a non-string or an empty/whitespace-only phrase."""
    if isinstance(phrases, str):
        raise ValueError("phrases must be a list of strings, not one string")
    cleaned = []
    for i, phrase in enumerate(phrases):
        if not isinstance(phrase, str):
            raise ValueError(f"phrase {i} is {type(phrase).__name__}, expected a string")
        if not phrase.strip():
            raise ValueError(f"phrase {i} is empty")
        cleaned.append(phrase.strip())
    return cleaned


def _repeat_features(vision: Sam3VisionEncoderOutput, n: int) -> Sam3VisionEncoderOutput:
    """Batch-1 vision features viewed as batch n (expand: no copy). Sam3Model does not broadcast them."""
    return Sam3VisionEncoderOutput(
        last_hidden_state=vision.last_hidden_state.expand(n, *vision.last_hidden_state.shape[1:]),
        fpn_hidden_states=tuple(t.expand(n, *t.shape[1:]) for t in vision.fpn_hidden_states),
        fpn_position_encoding=tuple(t.expand(n, *t.shape[1:]) for t in vision.fpn_position_encoding),
    )


class ConceptPredictor:
    """Stateful inference API over one Sam3Model; safe to share between threads (one lock around the model).

    ``loaded`` is a LoadedModel or a ``(model, processor)`` pair. The device is chosen once; bf16 autocast
    is used only on CUDA. ``phrase_batch_size`` phrases go through the decoder per forward pass.
    """

    def __init__(self, loaded: LoadedModel | tuple[Sam3Model, Sam3Processor], device: str | torch.device = "cpu",
                 *, phrase_batch_size: int = 16):
        if isinstance(loaded, LoadedModel):
            model, processor, self.version = loaded.model, loaded.processor, loaded.version
        else:
            (model, processor), self.version = loaded, ""
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.phrase_batch_size = phrase_batch_size
        self._lock = threading.Lock()

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _tokenize(self, texts: list[str]) -> tuple[dict, list[bool]]:
        tokenizer = self.processor.tokenizer
        encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=MAX_TEXT_TOKENS,
                            return_tensors="pt")
        # One token over the limit is enough to know a phrase was cut (and avoids a length warning).
        probe = tokenizer(texts, truncation=True, max_length=MAX_TEXT_TOKENS + 1)["input_ids"]
        return encoded, [len(ids) > MAX_TEXT_TOKENS for ids in probe]

    def propose(self, image: Image.Image, phrases: list[str], *, score_threshold: float = 0.5,
                mask_threshold: float = 0.5, max_instances: int | None = None,
                query_threshold: float | None = None, dedupe_iou: float | None = None) -> list[PhraseProposal]:
        """One PhraseProposal per phrase, in order; instances sorted by score (desc), empty masks dropped.

        ``image`` is encoded once (``get_vision_features``); phrases run in batches on the cached
        features. Keeps instances with score > score_threshold (and, with ``query_threshold``, query score >
        query_threshold), at most ``max_instances`` per phrase, after dropping masks that overlap a kept one by
        IoU > ``dedupe_iou`` (None: keep duplicates). Raises ValueError for an empty phrase.
        """
        texts = check_phrases(phrases)
        if max_instances is not None and max_instances < 0:
            raise ValueError("max_instances must be >= 0")
        if dedupe_iou is not None and not 0.0 < dedupe_iou <= 1.0:
            raise ValueError("dedupe_iou must be in (0, 1] or None")
        if not texts:
            return []
        image = image.convert("RGB")
        width, height = image.size
        pixel_values = self.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
        proposals: list[PhraseProposal] = []
        with self._lock, torch.inference_mode(), self._autocast():
            encoded, truncated = self._tokenize(texts)
            vision = self.model.get_vision_features(pixel_values=pixel_values.to(self.device))
            for start in range(0, len(texts), self.phrase_batch_size):
                stop = min(start + self.phrase_batch_size, len(texts))
                outputs = self.model(
                    vision_embeds=_repeat_features(vision, stop - start),
                    input_ids=encoded["input_ids"][start:stop].to(self.device),
                    attention_mask=encoded["attention_mask"][start:stop].to(self.device),
                )
                for row in range(stop - start):
                    i = start + row
                    proposals.append(self._postprocess(
                        phrases[i], outputs, row, size=(height, width), truncated=truncated[i],
                        score_threshold=score_threshold, mask_threshold=mask_threshold,
                        max_instances=max_instances, query_threshold=query_threshold, dedupe_iou=dedupe_iou,
                    ))
        return proposals

    def _postprocess(self, phrase: str, outputs, row: int, *, size: tuple[int, int], truncated: bool,
                     score_threshold: float, mask_threshold: float, max_instances: int | None,
                     query_threshold: float | None = None, dedupe_iou: float | None = None) -> PhraseProposal:
        """Row ``row`` of the batch -> PhraseProposal. pred_logits [B,Q], presence_logits [B,1],
        pred_boxes [B,Q,4] normalised xyxy, pred_masks [B,Q,h,w] and semantic_seg [B,1,h,w] logits; ``size`` is
        (H, W) original."""
        height, width = size

        def full_size(logits: torch.Tensor) -> dict:  # [h,w] logits -> RLE of the mask at the original size
            probabilities = F.interpolate(logits.float().sigmoid()[None, None], size=(height, width), mode="bilinear",
                                          align_corners=False)[0, 0]
            return rle_utils.encode((probabilities > mask_threshold).cpu().numpy())

        presence = outputs.presence_logits[row].float().sigmoid()  # [1]
        queries = outputs.pred_logits[row].float().sigmoid()  # [Q]
        scores = queries * presence  # [Q]
        order = torch.argsort(scores, descending=True)
        order = order[scores[order] > score_threshold]
        if query_threshold is not None:
            order = order[queries[order] > query_threshold]
        scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=scores.device)
        instances: list[Instance] = []
        best_beyond_cap = 0.0
        for q in order.tolist():
            capped = max_instances is not None and len(instances) >= max_instances
            rle = full_size(outputs.pred_masks[row, q])
            if not rle_utils.area([rle])[0]:
                continue
            if dedupe_iou is not None and instances and \
                    rle_utils.iou([rle], [kept.rle for kept in instances]).max() > dedupe_iou:
                continue
            if capped:  # the first instance the cap leaves out: the best of them (scores are in order)
                best_beyond_cap = float(scores[q])
                break
            box = (outputs.pred_boxes[row, q].float() * scale).cpu()
            box[0::2] = box[0::2].clamp(0, width)
            box[1::2] = box[1::2].clamp(0, height)
            instances.append(Instance(rle=rle, box_xyxy=[float(v) for v in box],
                                      score=float(scores[q]), query_score=float(queries[q])))
        semantic = outputs.semantic_seg
        return PhraseProposal(phrase=phrase, presence_score=float(presence[0]), instances=instances,
                              truncated=truncated, best_beyond_cap=best_beyond_cap,
                              semantic_rle=None if semantic is None else full_size(semantic[row, 0]))
