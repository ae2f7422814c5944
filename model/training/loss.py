"""The promptable-concept-segmentation loss (docs/data-engine.md §10), for one batch of (image, phrase) pairs.

Per pair, predictions are Q queries (logit, box, mask) plus one presence logit; the targets are the
phrase's n ≥ 0 instance masks and boxes. Positive pairs (n > 0): queries are matched one-to-one to
instances (Hungarian, scipy) on classification + L1 + GIoU (+ mask dice) costs; matched queries learn
boxes (L1 + GIoU) and masks (sigmoid focal + dice); every query learns its class (BCE, focal or
IoU-aware BCE). Negative pairs (n = 0) train only the presence logit: their query, box and mask terms are
zero, as in SAM 3's fine-tuning recipe. Auxiliary terms repeat the class and box losses on every earlier
decoder layer; an optional semantic-segmentation term ties the ``semantic_seg`` head to the union mask.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torchvision.ops import generalized_box_iou

CLASS_LOSSES = ("bce", "focal", "iabce")


@dataclass
class LossConfig:
    """Weights of every term and the matcher's costs."""

    class_loss: str = field(default="bce", metadata={"help": "bce | focal | iabce (IoU-aware BCE)"})
    w_class: float = field(default=2.0, metadata={"help": "query classification"})
    w_box_l1: float = field(default=5.0, metadata={"help": "L1 on normalised xyxy boxes"})
    w_box_giou: float = field(default=2.0, metadata={"help": "1 - GIoU"})
    w_mask_focal: float = field(default=20.0, metadata={"help": "sigmoid focal on mask logits (mean over pixels)"})
    w_mask_dice: float = field(default=1.0, metadata={"help": "dice on mask probabilities"})
    w_presence: float = field(default=5.0, metadata={"help": "BCE on the presence logit, every pair"})
    w_semantic: float = field(default=1.0, metadata={"help": "BCE + dice of semantic_seg vs the union mask"})
    w_aux: float = field(default=1.0, metadata={"help": "scale of class+box terms on earlier decoder layers"})
    cost_class: float = field(default=2.0, metadata={"help": "matcher: focal-style class cost"})
    cost_l1: float = field(default=5.0, metadata={"help": "matcher: box L1"})
    cost_giou: float = field(default=2.0, metadata={"help": "matcher: -GIoU"})
    cost_dice: float = field(default=2.0, metadata={"help": "matcher: mask dice (last layer only)"})
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0

    def __post_init__(self) -> None:
        if self.class_loss not in CLASS_LOSSES:
            raise ValueError(f"class_loss must be one of {CLASS_LOSSES}, not {self.class_loss!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Targets:
    """Ground truth for B pairs: ``masks[b]`` [n_b,h,w] float in [0,1] at the prediction's mask resolution
    (area-downsampled, so edges are soft) and ``boxes[b]`` [n_b,4] normalised xyxy; n_b = 0 is a negative."""

    masks: list[torch.Tensor]
    boxes: list[torch.Tensor]

    @property
    def positive(self) -> torch.Tensor:
        return torch.tensor([len(b) > 0 for b in self.boxes], dtype=torch.bool)


def sigmoid_focal(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Elementwise sigmoid focal loss (RetinaNet); soft targets allowed."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def dice_loss(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - dice per row; inputs [N, P]."""
    numerator = 2 * (probabilities * targets).sum(-1)
    denominator = probabilities.sum(-1) + targets.sum(-1)
    return 1 - (numerator + 1) / (denominator + 1)


def pairwise_dice_cost(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[...,Q,P] x [...,n,P] -> [...,Q,n] dice cost."""
    numerator = 2 * probabilities @ targets.transpose(-1, -2)
    denominator = probabilities.sum(-1)[..., :, None] + targets.sum(-1)[..., None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def box_iou_diag(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of matching rows of two [N,4] xyxy box sets."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).clamp(min=0).prod(-1)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-9)


def hungarian_match(logits: torch.Tensor, boxes: torch.Tensor, target_boxes: torch.Tensor, config: LossConfig,
                    masks: torch.Tensor | None = None, target_masks: torch.Tensor | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one assignment for one pair: logits [Q], boxes [Q,4], target_boxes [n,4],
    optional masks [Q,h,w] logits / target_masks [n,h,w]. Returns (query indices, target indices)."""
    with_masks = masks is not None and target_masks is not None
    return batched_match(logits[None], boxes[None], target_boxes[None], [len(target_boxes)], config,
                         masks.flatten(1)[None] if with_masks else None,
                         target_masks.flatten(1)[None] if with_masks else None)[0]


def _class_loss(logits: torch.Tensor, target: torch.Tensor, quality: torch.Tensor, config: LossConfig
                ) -> torch.Tensor:
    """Per-query class loss [Q]; ``target`` 0/1, ``quality`` the matched box IoU (iabce only)."""
    if config.class_loss == "focal":
        return sigmoid_focal(logits, target, config.focal_alpha, config.focal_gamma)
    if config.class_loss == "iabce":
        p = logits.sigmoid().detach()
        soft = torch.where(target > 0, p**0.25 * quality.clamp(min=0.01) ** 0.75, torch.zeros_like(p))
        loss = F.binary_cross_entropy_with_logits(logits, soft, reduction="none")
        return torch.where(target > 0, 10.0 * loss, loss * p**2)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none")


def giou_diag(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of matching rows of two [N,4] xyxy box sets (torchvision's formula, row by row)."""
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2:] - x[:, :2]).prod(-1)  # noqa: E731
    union = area(a) + area(b) - inter
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).clamp(min=0).prod(-1)
    return inter / union - (hull - union) / hull


def batched_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[P,Q,4] x [P,N,4] xyxy -> [P,Q,N] generalised IoU (torchvision's generalized_box_iou per pair)."""
    a, b = a[:, :, None], b[:, None]
    lt, rb = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = lambda x: (x[..., 2:] - x[..., :2]).prod(-1)  # noqa: E731
    union = area(a) + area(b) - inter
    hull = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).clamp(min=0).prod(-1)
    return inter / union - (hull - union) / hull


@torch.no_grad()
def batched_match(logits: torch.Tensor, boxes: torch.Tensor, target_boxes: torch.Tensor, counts: list[int],
                  config: LossConfig, masks: torch.Tensor | None = None, target_masks: torch.Tensor | None = None
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``hungarian_match`` for P pairs at once: logits [P,Q], boxes [P,Q,4], target_boxes [P,N,4] padded (pair p
    has ``counts[p]`` real targets), optional masks [P,Q,hw] logits / target_masks [P,N,hw]. The costs are built
    in a few batched ops and copied to the CPU once (a GPU step is otherwise bound by thousands of tiny kernels)."""
    p = logits.float().sigmoid()[:, :, None]
    a, g = config.focal_alpha, config.focal_gamma
    pos = a * (1 - p) ** g * -(p + 1e-8).log()
    neg = (1 - a) * p**g * -(1 - p + 1e-8).log()
    cost = config.cost_class * (pos - neg)
    cost = cost + config.cost_l1 * torch.cdist(boxes.float(), target_boxes.float(), p=1)
    cost = cost - config.cost_giou * batched_giou(boxes.float(), target_boxes.float())
    if masks is not None and target_masks is not None and config.cost_dice:
        cost = cost + config.cost_dice * pairwise_dice_cost(masks.float().sigmoid(), target_masks.float())
    cost = cost.cpu().numpy()
    return [linear_sum_assignment(cost[i, :, :n]) for i, n in enumerate(counts)]


def pcs_loss(outputs: dict[str, torch.Tensor], targets: Targets, config: LossConfig) -> dict[str, torch.Tensor]:
    """All loss terms for a batch; ``total`` is their weighted sum.

    ``outputs`` as returned by ``forward_pcs``: logits [L,B,Q], boxes [L,B,Q,4], presence [L,B,1],
    masks [B,Q,h,w], semantic [B,1,h,w] or None. Terms: ``class``, ``box_l1``, ``box_giou``, ``mask_focal``,
    ``mask_dice``, ``presence``, ``semantic``, ``aux`` (unweighted), ``total`` (weighted).
    Per positive pair and layer: one Hungarian matching (mask dice in the cost on the last layer only), the
    class loss averaged over queries, box and mask terms summed over matches; classes are normalised by the
    number of positive pairs, boxes and masks by the number of target instances. All pairs are computed
    together (padded targets, gathered matches), not pair by pair.
    """
    logits, boxes, presence, masks = outputs["logits"], outputs["boxes"], outputs["presence"], outputs["masks"]
    n_layers, batch, n_queries = logits.shape
    device = logits.device
    zero = logits.sum() * 0.0
    positive = targets.positive.to(device)
    n_targets = max(1, sum(len(b) for b in targets.boxes))
    n_positive = max(1, int(positive.sum()))

    # Presence: every pair; the last layer's logit is what inference uses, earlier ones are auxiliary.
    presence_target = positive.float()[:, None]
    presence_loss = F.binary_cross_entropy_with_logits(presence[-1], presence_target)
    aux = zero
    if n_layers > 1:
        aux = aux + F.binary_cross_entropy_with_logits(presence[:-1], presence_target.expand_as(presence[:-1]))
    terms = {k: zero for k in ("class", "box_l1", "box_giou", "mask_focal", "mask_dice", "semantic")}

    pairs = torch.nonzero(positive).flatten().tolist()
    if pairs:
        counts = [len(targets.boxes[b]) for b in pairs]
        n_max, hw = max(counts), masks.shape[-2] * masks.shape[-1]
        t_boxes = torch.zeros(len(pairs), n_max, 4, device=device, dtype=boxes.dtype)
        t_masks = torch.zeros(len(pairs), n_max, hw, device=device, dtype=masks.dtype)
        for i, b in enumerate(pairs):
            t_boxes[i, :counts[i]] = targets.boxes[b].to(device=device, dtype=boxes.dtype)
            t_masks[i, :counts[i]] = targets.masks[b].to(device=device, dtype=masks.dtype).flatten(1)
        pair_index = torch.as_tensor(pairs, dtype=torch.long, device=device)
        pair_masks = masks[pair_index].flatten(2)  # [P,Q,hw]
        positive_rows = positive.float()
        for layer in range(n_layers):
            last = layer == n_layers - 1
            layer_logits, layer_boxes = logits[layer, pair_index], boxes[layer, pair_index]
            matches = batched_match(layer_logits, layer_boxes, t_boxes, counts, config,
                                    pair_masks if last else None, t_masks if last else None)
            rows = np.concatenate([np.full(len(q), i) for i, (q, _) in enumerate(matches)])
            rows = torch.as_tensor(rows, dtype=torch.long, device=device)
            q_idx = torch.as_tensor(np.concatenate([q for q, _ in matches]), dtype=torch.long, device=device)
            t_idx = torch.as_tensor(np.concatenate([t for _, t in matches]), dtype=torch.long, device=device)
            matched_boxes, matched_targets = layer_boxes[rows, q_idx], t_boxes[rows, t_idx]
            class_target = torch.zeros(batch, n_queries, device=device)
            class_target[pair_index[rows], q_idx] = 1.0
            quality = torch.zeros(batch, n_queries, device=device)
            quality[pair_index[rows], q_idx] = box_iou_diag(matched_boxes.detach(), matched_targets)
            per_pair = _class_loss(logits[layer], class_target, quality, config).mean(-1)
            cls = (per_pair * positive_rows).sum() / n_positive
            l1 = F.l1_loss(matched_boxes, matched_targets, reduction="none").sum() / n_targets
            giou = (1 - giou_diag(matched_boxes, matched_targets)).sum() / n_targets
            if not last:
                aux = aux + config.w_class * cls + config.w_box_l1 * l1 + config.w_box_giou * giou
                continue
            terms["class"], terms["box_l1"], terms["box_giou"] = cls, l1, giou
            pred, gt = pair_masks[rows, q_idx], t_masks[rows, t_idx]
            terms["mask_focal"] = sigmoid_focal(pred, gt, config.focal_alpha, config.focal_gamma).mean(-1).sum() \
                / n_targets
            terms["mask_dice"] = dice_loss(pred.sigmoid(), gt).sum() / n_targets
        semantic = outputs.get("semantic")
        if semantic is not None and config.w_semantic:
            union = t_masks.max(1).values  # [P,hw]; padding rows are zeros
            pred = semantic[pair_index, 0].flatten(1)
            bce = F.binary_cross_entropy_with_logits(pred, union, reduction="none").mean(-1)
            terms["semantic"] = (bce + dice_loss(pred.sigmoid(), union)).sum() / n_positive
    terms["presence"] = presence_loss
    terms["aux"] = aux
    total = (config.w_class * terms["class"] + config.w_box_l1 * terms["box_l1"]
             + config.w_box_giou * terms["box_giou"] + config.w_mask_focal * terms["mask_focal"]
             + config.w_mask_dice * terms["mask_dice"] + config.w_presence * presence_loss
             + config.w_semantic * terms["semantic"] + config.w_aux * aux)
    terms["total"] = total
    return terms
