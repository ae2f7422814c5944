"""Training-side view of Sam3Model: a configurable from-scratch architecture and a forward that keeps every
decoder layer's outputs (transformers returns only the last one, which rules out auxiliary losses).

``forward_pcs`` mirrors ``Sam3Model.forward`` for the text-only path (no exemplar boxes); the image is
encoded once per scene and its features are gathered for each (scene, phrase) pair, so several phrases of
one scene cost one vision pass.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor
from transformers.models.sam3.modeling_sam3 import box_cxcywh_to_xyxy, inverse_sigmoid

from model.sam3.build import tiny_processor
from model.sam3.tokenizer import MAX_TEXT_TOKENS


@dataclass
class ArchConfig:
    """Sizes of a from-scratch SAM 3 (every block shares ``hidden_size``)."""

    image_size: int = field(default=112, metadata={"help": "model input side in pixels"})
    patch_size: int = field(default=8, metadata={"help": "ViT patch; the grid is image_size // patch_size"})
    hidden_size: int = field(default=64, metadata={"help": "width of every block"})
    vit_layers: int = field(default=3, metadata={"help": "ViT depth; the last layer attends globally"})
    text_layers: int = field(default=1, metadata={"help": "text encoder depth (word-level tokens)"})
    encoder_layers: int = field(default=1, metadata={"help": "image-text fusion encoder depth"})
    decoder_layers: int = field(default=2, metadata={"help": "DETR decoder depth (aux losses on each)"})
    num_queries: int = field(default=16, metadata={"help": "object queries"})
    num_heads: int = field(default=2, metadata={"help": "attention heads everywhere"})


def arch_config(arch: ArchConfig, processor: Sam3Processor) -> Sam3Config:
    """The Sam3Config for ``arch`` with the processor's tokenizer (vocab and special ids), dropout off."""
    tok = processor.tokenizer
    h, grid = arch.hidden_size, arch.image_size // arch.patch_size
    block = dict(hidden_size=h, num_attention_heads=arch.num_heads, intermediate_size=2 * h, dropout=0.0)
    return Sam3Config(
        vision_config=dict(
            backbone_config=dict(
                model_type="sam3_vit_model", hidden_size=h, intermediate_size=2 * h,
                num_hidden_layers=arch.vit_layers, num_attention_heads=arch.num_heads,
                image_size=arch.image_size, patch_size=arch.patch_size, window_size=max(1, grid // 2),
                global_attn_indexes=[arch.vit_layers - 1], pretrain_image_size=arch.image_size,
            ),
            fpn_hidden_size=h,
            backbone_feature_sizes=[[grid * 4] * 2, [grid * 2] * 2, [grid] * 2],
        ),
        text_config=dict(
            vocab_size=len(tok), hidden_size=h, intermediate_size=2 * h, projection_dim=h,
            num_hidden_layers=arch.text_layers, num_attention_heads=arch.num_heads,
            max_position_embeddings=MAX_TEXT_TOKENS, bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        ),
        geometry_encoder_config=dict(block, num_layers=1),
        detr_encoder_config=dict(block, num_layers=arch.encoder_layers),
        detr_decoder_config=dict(block, num_layers=arch.decoder_layers, num_queries=arch.num_queries),
        mask_decoder_config=dict(hidden_size=h, num_attention_heads=arch.num_heads),
    )


def build_from_scratch(arch: ArchConfig, seed: int = 0) -> tuple[Sam3Model, Sam3Processor]:
    """A randomly initialised Sam3Model of ``arch`` (train mode) and its processor (input image_size²)."""
    processor = tiny_processor(arch.image_size)
    processor.image_processor = Sam3ImageProcessor(size={"height": arch.image_size, "width": arch.image_size})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3Model(arch_config(arch, processor))
    spread_reference_boxes(model)
    return model.train(), processor


def spread_reference_boxes(model: Sam3Model, size: float = 0.25) -> None:
    """Start the decoder's queries on a grid of boxes covering the image.

    transformers initialises ``reference_points`` near 0, i.e. every query starts on the same centred box;
    from scratch the queries then never separate (the tiny model's last decoder layer gave all 16 queries one
    vector: one logit, one box offset, at the base rate). Distinct starting boxes give each query its own region
    through the box relative-position bias, as DETR variants with anchor boxes do.
    """
    weight = model.detr_decoder.reference_points.weight
    n = weight.shape[0]
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    index = torch.arange(n, dtype=torch.float32)
    cx, cy = (index % columns + 0.5) / columns, (index // columns + 0.5) / rows
    boxes = torch.stack([cx, cy, torch.full_like(cx, size), torch.full_like(cx, size)], dim=1)
    with torch.no_grad():
        weight.copy_(torch.logit(boxes.clamp(1e-3, 1 - 1e-3)))


def arch_dict(arch: ArchConfig) -> dict:
    return asdict(arch)


def forward_pcs(model: Sam3Model, pixel_values: torch.Tensor, scene_index: torch.Tensor,
                input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Outputs of every decoder layer for B (scene, phrase) pairs over S scenes.

    pixel_values [S,3,R,R]; scene_index [B] (long, which scene each pair uses); input_ids / attention_mask
    [B,T]. Returns ``logits`` [L,B,Q], ``boxes`` [L,B,Q,4] (normalised xyxy), ``presence`` [L,B,1],
    ``masks`` [B,Q,h,w] and ``semantic`` [B,1,h,w] (logits, last layer only).
    """
    vision = model.get_vision_features(pixel_values=pixel_values)
    fpn_hidden = [t.index_select(0, scene_index) for t in vision.fpn_hidden_states[:-1]]
    fpn_pos = [t.index_select(0, scene_index) for t in vision.fpn_position_encoding[:-1]]
    text = model.get_text_features(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
    text_features = text.pooler_output
    text_mask = attention_mask.bool()
    encoder = model.detr_encoder(vision_features=[fpn_hidden[-1]], text_features=text_features,
                                 vision_pos_embeds=[fpn_pos[-1]], text_mask=text_mask)
    decoder = model.detr_decoder(vision_features=encoder.last_hidden_state, text_features=encoder.text_features,
                                 vision_pos_encoding=encoder.pos_embeds_flattened, text_mask=text_mask,
                                 spatial_shapes=encoder.spatial_shapes)
    offsets = model.detr_decoder.box_head(decoder.intermediate_hidden_states)
    boxes = box_cxcywh_to_xyxy((inverse_sigmoid(decoder.reference_boxes) + offsets).sigmoid())
    logits = model.dot_product_scoring(decoder_hidden_states=decoder.intermediate_hidden_states,
                                       text_features=encoder.text_features, text_mask=text_mask).squeeze(-1)
    masks = model.mask_decoder(decoder_queries=decoder.intermediate_hidden_states[-1],
                               backbone_features=list(fpn_hidden), encoder_hidden_states=encoder.last_hidden_state,
                               prompt_features=text_features, prompt_mask=text_mask)
    return {"logits": logits, "boxes": boxes, "presence": decoder.presence_logits, "masks": masks.pred_masks,
            "semantic": masks.semantic_seg}
