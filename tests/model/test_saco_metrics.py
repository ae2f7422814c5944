"""SA-Co cgF1: the official evaluator's numbers on recorded inputs, and the definition on small hand-made pairs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model import rle
from model.eval import METRIC_NAMES, SacoFormatError, evaluate
from model.eval.__main__ import main
from model.eval.cgf1 import TRUE_NEGATIVE, select_oracle

FIXTURES = Path(__file__).parent / "fixtures" / "saco_eval"
MANIFEST = json.loads((FIXTURES / "expected.json").read_text())
ROOT = Path(__file__).resolve().parents[2]


def _case_paths(name: str) -> tuple[list[Path], Path]:
    case = MANIFEST["cases"][name]
    return [FIXTURES / path for path in case["gt"]], FIXTURES / case["pred"]


@pytest.mark.parametrize("name", sorted(MANIFEST["cases"]))
def test_agrees_with_the_official_evaluator(name):
    gts, pred = _case_paths(name)
    expected = MANIFEST["cases"][name]["expected"]
    metrics = evaluate(gts, pred).metrics
    assert list(expected) == list(METRIC_NAMES) == list(metrics)
    for metric, value in expected.items():
        assert metrics[metric] == pytest.approx(value, abs=1e-6, rel=0), metric


def test_results_without_a_box_score_the_same():
    # The official evaluator raises here under numpy 2 when given several GT files: its loadRes stores an
    # array ``bbox`` in the shared prediction dicts, and the next file's ``bbox == []`` test cannot broadcast.
    gts, pred = _case_paths("random_3gt_seed0")
    stripped = [{k: v for k, v in r.items() if k != "bbox"} if "segmentation" in r else r
                for r in json.loads(pred.read_text())]
    metrics = evaluate(gts, stripped).metrics
    for metric, value in MANIFEST["cases"]["random_3gt_seed0"]["expected"].items():
        assert metrics[metric] == pytest.approx(value, abs=1e-6, rel=0), metric


def test_fixtures_cover_the_edge_cases():
    cases = MANIFEST["cases"]
    for name in ("no_predictions", "negatives_with_predictions", "all_crowd_pairs", "only_crowd_everywhere",
                 "empty_annotations_no_predictions", "empty_gt_file", "hungarian_ties", "threshold_boundaries"):
        assert name in cases
    assert sum(len(case["gt"]) == 3 and case["source"] == "official" for case in cases.values()) >= 6


# ----------------------------------------------------------------------------------------------
# Hand-made pairs: 10 x 10 images, square masks
# ----------------------------------------------------------------------------------------------


def square(y: int, x: int, size: int = 4) -> dict:
    mask = np.zeros((10, 10), dtype=bool)
    mask[y:y + size, x:x + size] = True
    return rle.encode(mask)


def gold(pairs: dict[int, list], *, crowd: dict[int, list[bool]] | None = None, non_exhaustive=()) -> dict:
    """``pairs``: pair id -> GT masks (an empty list is a negative pair)."""
    crowd = crowd or {}
    images = [{"id": i, "height": 10, "width": 10, "text_input": f"np {i}", "is_instance_exhaustive":
               int(i not in non_exhaustive)} for i in pairs]
    annotations = []
    for i, masks in pairs.items():
        for k, mask in enumerate(masks):
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1, "segmentation": mask,
                                "iscrowd": int(crowd.get(i, [False] * len(masks))[k])})
    return {"categories": [{"id": 1, "name": "object"}], "images": images, "annotations": annotations}


def result(image_id: int, mask: dict, score: float = 0.9) -> dict:
    return {"image_id": image_id, "category_id": 1, "segmentation": mask, "score": score}


def f1(p, r):
    return 2 * p * r / (p + r + 1e-4)


def test_one_instance_found_one_missed_by_hand():
    gt = gold({1: [square(0, 0), square(5, 5)], 2: []})
    preds = [result(1, square(0, 0)), result(1, square(5, 5), score=0.49)]  # the second does not count
    out = evaluate(gt, preds)
    precision, recall = 1 / (1 + 1e-4), 1 / (2 + 1e-4)  # TP 1, FP 0, FN 1 at every threshold
    mcc = 1 / (1 + 1e-6)  # IL: one TP (pair 1), one TN (pair 2)
    assert out.metrics["positive_micro_F1"] == pytest.approx(f1(precision, recall), abs=1e-12)
    assert out.metrics["positive_macro_F1"] == pytest.approx(f1(precision, recall), abs=1e-12)
    assert out.metrics["IL_MCC"] == pytest.approx(mcc, abs=1e-12)
    for key in ("cgF1", "cgF1@0.5", "cgF1@0.75"):
        assert out.metrics[key] == pytest.approx(f1(precision, recall) * mcc, abs=1e-12)
    assert out.to_json()["num_pairs"] == 2 and out.image_level_counts == {"IL_TP": 1, "IL_FP": 0, "IL_TN": 1,
                                                                          "IL_FN": 0}


def test_iou_thresholds_split_a_loose_mask():
    # A 4x4 GT and a 4x5 prediction: IoU 0.8, a TP up to tau = 0.8 (7 of 10 thresholds).
    gt = gold({1: [square(0, 0)], 2: []})
    loose = np.zeros((10, 10), dtype=bool)
    loose[0:4, 0:5] = True
    out = evaluate(gt, [result(1, rle.encode(loose))])
    assert out.tp[0].tolist() == [1] * 7 + [0] * 3
    assert out.metrics["positive_micro_F1@0.75"] == pytest.approx(f1(1 / 1.0001, 1 / 1.0001), abs=1e-12)
    assert out.metrics["positive_micro_F1"] == pytest.approx(0.7 * f1(1 / 1.0001, 1 / 1.0001), abs=1e-12)


def test_false_positives_on_negative_pairs_cost_il_mcc_not_positive_micro_f1():
    gt = gold({1: [square(0, 0)], 2: [], 3: []})
    clean = evaluate(gt, [result(1, square(0, 0))])
    noisy = evaluate(gt, [result(1, square(0, 0)), result(2, square(3, 3)), result(2, square(6, 6))])
    assert noisy.metrics["positive_micro_F1"] == clean.metrics["positive_micro_F1"]
    assert noisy.metrics["precision"] < clean.metrics["precision"]
    assert noisy.image_level_counts["IL_FP"] == 1
    expected_mcc = (1 * 1 - 1 * 0) / ((2 * 1 * 2 * 1) ** 0.5 + 1e-6)
    assert noisy.metrics["IL_MCC"] == pytest.approx(expected_mcc, abs=1e-12)


def test_a_pair_whose_gts_are_all_crowd_is_a_negative():
    gt = gold({1: [square(0, 0), square(5, 5)], 2: [square(0, 0)]}, crowd={1: [True, True]})
    out = evaluate(gt, [result(1, square(0, 0)), result(2, square(0, 0))])
    assert out.outcome.tolist() == [2, 3]  # FALSE_POSITIVE, TRUE_POSITIVE
    assert out.num_gt.tolist() == [0, 1]


def test_oracle_prefers_a_true_negative_then_the_best_then_the_earlier_file():
    a = gold({1: [square(0, 0)], 2: [square(0, 0)], 3: [square(6, 6)]})
    b = gold({1: [], 2: [square(0, 0), square(5, 5)], 3: [square(6, 0), square(0, 6)]})
    c = gold({1: [square(0, 0)], 2: [square(0, 0)], 3: [square(6, 6), square(6, 0), square(0, 6)]})
    preds = [result(2, square(0, 0)), result(3, square(0, 0))]  # pair 3: no overlap with any annotator
    out = evaluate([a, b, c], preds)
    # Pair 1: b says "absent" and nothing was predicted. Pair 2: a and c match exactly (a is earlier).
    # Pair 3: local F1 is 0 against all three, so a (FN 1) stays, not b (FN 2) or c (FN 3).
    assert out.chosen_gt.tolist() == [1, 0, 0]
    assert out.fn[:, 0].tolist() == [0, 0, 1]


def test_pairs_non_exhaustive_in_any_file_are_not_evaluated():
    a = gold({1: [square(0, 0)], 2: [], 3: []}, non_exhaustive={3})
    b = gold({1: [square(0, 0)], 2: [], 3: []}, non_exhaustive={2})
    assert evaluate([a, b], []).image_ids == [1]
    assert evaluate([b, a], []).image_ids == [1]
    assert evaluate(a, []).image_ids == [1, 2]


def test_positive_macro_f1_is_minus_one_without_a_detected_positive_pair():
    out = evaluate(gold({1: [square(0, 0)], 2: []}), [result(2, square(0, 0))])
    assert out.metrics["positive_macro_F1"] == out.metrics["positive_macro_F1@0.5"] == -1.0
    assert out.metrics["cgF1"] == 0.0


def test_results_in_an_unknown_category_are_ignored():
    gt = gold({1: [square(0, 0)], 2: []})
    out = evaluate(gt, [result(1, square(0, 0)), {**result(2, square(0, 0)), "category_id": 7}])
    assert out.image_level_counts == {"IL_TP": 1, "IL_FP": 0, "IL_TN": 1, "IL_FN": 0}


def test_malformed_input_is_reported():
    gt = gold({1: [square(0, 0)]})
    with pytest.raises(SacoFormatError, match="category_id"):
        evaluate(gt, [{"image_id": 1, "segmentation": square(0, 0), "score": 0.9}])
    with pytest.raises(SacoFormatError, match="categories"):
        evaluate({"images": [], "annotations": []}, [])
    with pytest.raises(SacoFormatError, match="is_instance_exhaustive"):
        evaluate({"categories": [], "images": [{"id": 1}]}, [])


def test_oracle_compares_means_bit_for_bit():
    # The official code compares np.mean of each (10,) F1 row; the vectorised mean must give the same bits.
    rng = np.random.default_rng(0)
    f1s = np.where(rng.random((2000, 3, 10)) < 0.5, 1 / 3, rng.random((2000, 3, 10)))
    means = f1s.mean(axis=-1)
    assert all(np.mean(f1s[i, g]) == means[i, g] for i in range(2000) for g in range(3))
    outcome = np.full((2000, 3), TRUE_NEGATIVE + 3)
    assert (select_oracle(outcome, f1s) == np.argmax(means, axis=1)).all()


# ----------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------


def test_cli_prints_the_metrics_as_json(capsys):
    gts, pred = _case_paths("random_3gt_seed0")
    assert main(["--gt", *map(str, gts), "--pred", str(pred)]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = MANIFEST["cases"]["random_3gt_seed0"]["expected"]
    for key in ("cgF1", "positive_micro_F1", "IL_MCC", "positive_macro_F1", "cgF1@0.5", "cgF1@0.75"):
        assert printed[key] == pytest.approx(expected[key], abs=1e-6)
    assert printed["num_pairs"] == sum(printed[k] for k in ("IL_TP", "IL_FP", "IL_TN", "IL_FN"))


def test_cli_runs_as_a_module_with_repeated_gt_flags():
    gts, pred = _case_paths("pair_missing_from_later_file")
    args = [a for gt in gts for a in ("--gt", str(gt))]
    done = subprocess.run([sys.executable, "-m", "model.eval", *args, "--pred", str(pred)], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["cgF1"] == pytest.approx(
        MANIFEST["cases"]["pair_missing_from_later_file"]["expected"]["cgF1"], abs=1e-6)


def test_cli_reports_bad_input(tmp_path, capsys):
    gts, _ = _case_paths("no_predictions")
    bad = tmp_path / "pred.json"
    bad.write_text(json.dumps({"not": "a list"}))
    assert main(["--gt", str(gts[0]), "--pred", str(bad)]) == 2
    assert "COCO results" in capsys.readouterr().err
