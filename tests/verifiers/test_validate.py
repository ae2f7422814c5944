"""Checking a calibrated verifier's thresholds on verdicts it was not calibrated on."""
from __future__ import annotations

import json

import pytest

from tests.verifiers.test_verifier_training import _write_examples
from verifiers.model import load_verifier
from verifiers.training import load_examples
from verifiers.validate import main, validate


def test_each_stored_threshold_is_measured_on_the_new_verdicts(tmp_path, tiny_checkpoint):
    path, images = _write_examples(tmp_path)
    examples = load_examples(path, images)
    verifier = load_verifier(str(tiny_checkpoint), cache_dir=tmp_path)
    # Thresholds that certify every question of their kind: precision is then the share the gold accepts.
    verifier.manifest.update(thresholds={"mv": 0.0, "mv_reject": 1.0, "ev": 0.0, "ev_zero": None},
                             target_precision=0.98, drop_precision=0.995)
    report = validate(verifier, examples)
    assert set(report) == {"mv", "mv_reject", "ev"}  # no row for a claim without a threshold
    mv = [e for e in examples if e.task == "mv"]
    accepted = sum(e.gold in ("accept", "accept_as_text") for e in mv)
    assert report["mv"]["certified"] == report["mv"]["questions"] == len(mv) and report["mv"]["coverage"] == 1.0
    assert report["mv"]["precision"] == pytest.approx(accepted / len(mv))
    assert report["mv_reject"]["precision"] == pytest.approx(1 - accepted / len(mv))
    assert report["mv_reject"]["target"] == 0.995
    boxed = [e for e in examples if e.task == "ev" and e.rles]
    assert report["ev"]["questions"] == report["ev"]["certified"] == len(boxed)
    row = report["mv"]
    assert row["precision_lower_95"] <= row["precision"] <= row["precision_upper_95"]
    # Far below the target, with enough questions to say so.
    assert row["refuted"] == (row["precision_upper_95"] < 0.98) and row["refuted"]
    # An EV claim fitted with SAM 3's witnesses is judged on them, and needs them.
    verifier.manifest["with_sam3"] = {"ev": {"p_accept_logit": 0.0, "sam3_presence_logit": -20.0, "bias": 0.0}}
    verifier.manifest["thresholds"]["ev"] = 0.5
    with pytest.raises(ValueError, match="sam3_presence"):
        validate(verifier, examples)
    for example, presence in zip(boxed, [0.01, 0.99] * len(boxed)):  # SAM 3 sure it is there: against exhaustive
        example.sam3_presence = presence
    assert validate(verifier, examples)["ev"]["certified"] == len(boxed[::2])
    verifier.manifest["thresholds"]["mv"] = 1.01  # certifies nothing: nothing to refute
    assert validate(verifier, examples)["mv"] | {"threshold": None} == {
        "threshold": None, "target": 0.98, "questions": len(mv), "certified": 0, "coverage": 0.0, "precision": None,
        "precision_lower_95": None, "precision_upper_95": None, "refuted": False}


@pytest.mark.slow
def test_the_command_refuses_the_verdicts_the_version_was_calibrated_on(tmp_path, tiny_checkpoint, capsys):
    from verifiers.calibrate import main as calibrate

    path, images = _write_examples(tmp_path)
    out = tmp_path / "calibrated"
    assert calibrate(["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--examples", str(path), "--images",
                      str(images), "--target-precision", "0.9", "--min-support", "3"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(out), "--examples", str(path), "--images", str(images)])
    assert "validate on other verdicts" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a file without its folder
        main(["--checkpoint", str(out), "--examples", str(path), "--examples", str(path), "--images", str(images)])
    assert "each --examples needs its --images" in capsys.readouterr().err
    (tmp_path / "fresh").mkdir()
    fresh, fresh_images = _write_examples(tmp_path / "fresh")
    assert main(["--checkpoint", str(out), "--examples", str(fresh), "--images", str(fresh_images)]) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((out / "manifest.json").read_text())["thresholds"]
    assert printed["sources"] == [str(fresh)]
    assert set(printed["thresholds"]) == {name for name, t in stored.items() if t is not None}
