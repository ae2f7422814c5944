"""Escaped errors against the ground truth, seconds per datapoint, gold.json loading, labelled stats."""
from __future__ import annotations

import hashlib
import json

import pytest

from simulated_annotator import GroundTruth, SessionStats, TaskRecord, escaped_errors, seconds_per_datapoint
from tests.simulated_annotator.worlds import box, pair

SQ1, SQ2 = box(0, 0, 10, 10), box(20, 20, 30, 30)


@pytest.fixture
def truth() -> GroundTruth:
    return GroundTruth([
        pair(1, "square", [SQ1, SQ2], sha="a"),
        pair(2, "circle", [], sha="a", kind="hard_negative"),
        pair(3, "star", [SQ1], sha="b"),
        pair(4, "dog", [], sha="b"),
        pair(5, "heart", [SQ2], sha="b"),
    ])


def _entry(dp_id, sha, phrase, exhaustive=1):
    return {"id": dp_id, "file_name": f"{sha}.png", "text_input": phrase, "width": 40, "height": 40,
            "is_instance_exhaustive": exhaustive, "is_pixel_exhaustive": exhaustive, "media_sha256": sha}


def _ann(ann_id, dp_id, rle):
    return {"id": ann_id, "image_id": dp_id, "segmentation": rle, "bbox": [0, 0, 0, 0], "iscrowd": 0}


def test_escaped_errors_count_each_kind_once(truth):
    snapshot = {
        "images": [
            _entry(10, "a", "square"),         # one right mask, one instance missing, marked exhaustive
            _entry(11, "a", "circle"),         # a wrong mask on a negative
            _entry(12, "b", "star"),           # accepted as "not present" but the star is there
            _entry(13, "b", "dog"),            # a right negative
            _entry(14, "b", "heart", 0),       # incomplete but not marked exhaustive: not an error
            _entry(15, "zzz", "square"),       # unknown to the ground truth
        ],
        "annotations": [
            _ann(1, 10, SQ1),
            _ann(2, 11, SQ1),
            _ann(3, 14, box(20, 20, 30, 26)),  # IoU 0.6 with the heart: a right mask
            _ann(4, 14, box(0, 30, 5, 35)),    # wrong
        ],
    }
    result = escaped_errors(snapshot, truth)
    assert (result.accepted_masks, result.accepted_datapoints, result.unmatched_datapoints) == (4, 5, 1)
    assert (result.wrong_masks, result.false_negatives, result.incomplete_exhaustive) == (2, 1, 1)
    assert result.missing_instances == 1
    assert result.datapoints_with_any_error == 4  # 10, 11, 12, 14
    assert result.per_1000_masks == 500.0
    assert result.per_1000_datapoints == 400.0
    assert result.any_per_1000_datapoints == 800.0
    assert "SIMULATED" in result.summary()
    assert result.as_dict()["label"].startswith("SIMULATED")


def test_snapshot_entries_match_by_file_name_without_a_hash(truth, tmp_path):
    entry = _entry(10, "a", "Square")
    del entry["media_sha256"]
    entry["file_name"] = "media/7/a.png"
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps({"images": [entry], "annotations": [_ann(1, 10, SQ1), _ann(2, 10, SQ2)]}))
    result = escaped_errors(path, truth)
    assert (result.accepted_datapoints, result.wrong_masks, result.per_1000_datapoints) == (1, 0, 0.0)


def test_a_clean_snapshot_has_no_escaped_errors(truth):
    snapshot = {"images": [_entry(10, "a", "square"), _entry(13, "b", "dog")],
                "annotations": [_ann(1, 10, SQ2), _ann(2, 10, SQ1)]}
    result = escaped_errors(snapshot, truth)
    assert (result.per_1000_masks, result.per_1000_datapoints, result.datapoints_with_any_error) == (0, 0, 0)


def _record(dp, kind, seconds, sha, phrase):
    return TaskRecord("sim-1", None, dp, kind, seconds, sha, phrase, "accept", False)


def test_seconds_per_datapoint_sums_tasks_and_splits_by_truth(truth):
    records = [
        _record(10, "mask_verification", 4, "a", "square"),
        _record(10, "exhaustivity_verification", 26, "a", "square"),
        _record(10, "correction", 160, "a", "square"),
        _record(11, "exhaustivity_verification", 26, "a", "circle"),
        _record(13, "mask_verification", 4, "b", "dog"),
        _record(13, "exhaustivity_verification", 26, "b", "dog"),
    ]
    timing = seconds_per_datapoint(records, truth)
    assert (timing.positive_mean, timing.negative_mean) == (190, 28)
    assert (timing.n_positive, timing.n_negative, timing.n_unknown) == (1, 2, 0)
    assert timing.by_phrase_kind == {"absent": 30, "hard_negative": 26, "positive": 190}
    assert timing.mix_mean(0.5) == 109
    assert timing.mix_mean() == pytest.approx((190 + 2 * 28) / 3)
    assert timing.summary().startswith("SIMULATED")


def test_datapoints_without_human_work_count_as_zero_seconds(truth):
    records = [_record(10, "correction", 160, "a", "square")]
    finished = [(10, "a", "square"), (12, "b", "star"), (13, "b", "dog"), (99, "b", "unicorn")]
    timing = seconds_per_datapoint(records, truth, datapoints=finished)
    assert (timing.positive_mean, timing.negative_mean, timing.n_unknown) == (80, 0, 1)


def test_ground_truth_from_gold_hashes_the_image_files(tmp_path):
    (tmp_path / "images").mkdir()
    png = b"\x89PNG not really"
    (tmp_path / "images" / "scene_00000.png").write_bytes(png)
    gold = {
        "images": [
            {"id": 1, "file_name": "images/scene_00000.png", "text_input": "red circle", "width": 40, "height": 40,
             "is_instance_exhaustive": 1, "is_pixel_exhaustive": 1, "phrase_kind": "positive", "media_id": 0},
            {"id": 2, "file_name": "images/scene_00000.png", "text_input": "dog", "width": 40, "height": 40,
             "is_instance_exhaustive": 1, "is_pixel_exhaustive": 1, "phrase_kind": "absent", "media_id": 0},
        ],
        "annotations": [{"id": 1, "image_id": 1, "bbox": [0, 0, 0.25, 0.25], "segmentation": SQ1, "area": 0.0625,
                         "iscrowd": 0, "category_id": 1, "source": "manual"}],
    }
    (tmp_path / "gold.json").write_text(json.dumps(gold))
    truth = GroundTruth.from_gold(tmp_path / "gold.json")
    sha = hashlib.sha256(png).hexdigest()
    assert truth.lookup(sha, "Red Circle").instances == (SQ1,)
    assert truth.lookup(sha, "dog").is_positive is False
    assert truth.sha256_for_name("scene_00000.png") == sha
    assert truth.by_image_id(2).phrase_kind == "absent"


def test_a_duplicate_pair_is_refused():
    with pytest.raises(ValueError, match="twice"):
        GroundTruth([pair(1, "square", sha="a"), pair(2, "Square", sha="a")])


def test_team_stats_add_up_and_say_simulated():
    one, two = SessionStats("sim-1"), SessionStats("sim-2")
    one.record(_record(1, "mask_verification", 4, "a", "square"))
    two.record(TaskRecord("sim-2", 5, 1, "correction", 160, "a", "square", "complete", True))
    two.conflicts = 2
    team = SessionStats.combine([one, two])
    assert (team.total_tasks, team.total_seconds, team.conflicts) == (2, 164, 2)
    assert team.mistakes["correction"] == 1
    assert team.as_dict()["simulated"] is True
    assert team.summary().startswith("SIMULATED annotator")
