"""The predictor on CUDA (bf16 autocast) agrees with the CPU float32 run. Needs a GPU."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from model import rle
from model.sam3.build import build_tiny
from model.sam3.predictor import ConceptPredictor
from model.synthetic import render_scene

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_cuda_bf16_matches_cpu():
    image = Image.fromarray(render_scene(0, 3).image).resize((320, 240))
    phrases = ["red circle", "blue square", "star"]
    cpu = ConceptPredictor(build_tiny(seed=0)).propose(image, phrases, score_threshold=0.0, max_instances=5)
    gpu = ConceptPredictor(build_tiny(seed=0), device="cuda").propose(image, phrases, score_threshold=0.0,
                                                                       max_instances=5)
    for a, b in zip(cpu, gpu):
        assert b.presence_score == pytest.approx(a.presence_score, abs=2e-2)
        assert b.instances and b.instances[0].rle["size"] == [240, 320]
        assert b.instances[0].score == pytest.approx(a.instances[0].score, abs=2e-2)
        assert max(rle.iou([b.instances[0].rle], [i.rle for i in a.instances])[0]) > 0.8
