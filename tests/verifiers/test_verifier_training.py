"""Training from verdicts: examples from the synthetic world, the JSONL command, calibrated checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from verifiers import calibration
from verifiers.model import load_verifier
from verifiers.synthetic import Example, scene_examples
from verifiers.training import (
    correction_examples,
    explained_questions,
    load_examples,
    mask_key,
    split_heldout,
    threshold_groups,
)

CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "verifier-tiny"


def test_synthetic_examples_follow_the_simulated_annotator_rules():
    examples = [e for i in range(6) for e in scene_examples(0, i, error_rate=0.0)]
    expected = {"mv_good": "accept", "mv_half": "reject", "mv_dilated": "reject", "mv_wrong_object": "reject",
                "mv_hard_negative": "reject", "mv_absent": "reject", "mv_vague": "reject",
                "ev_complete": "accept", "ev_complete_extra": "accept", "ev_missing": "reject",
                "ev_missing_wrong": "reject", "ev_zero_present": "reject",
                "ev_zero_absent": "accept", "ev_zero_hard_negative": "accept", "ev_vague": "ungroundable"}
    seen = set()
    for example in examples:
        assert example.label == example.correct  # no annotator mistakes at error rate 0
        if example.kind in expected:
            assert example.label == expected[example.kind], example.kind
            seen.add(example.kind)
        assert (len(example.rles) == 1) if example.task == "mv" else True
    assert {"mv_good", "mv_wrong_object", "ev_complete", "ev_complete_extra", "ev_missing_wrong", "ev_zero_present",
            "ev_vague"} <= seen


def test_boxed_sets_are_as_often_incomplete_as_complete():
    # EV must learn whether every matching object is boxed; when incomplete boxed sets are rare it learns
    # "boxes drawn -> accept" (the first tiny verifier: 0% right on them).
    boxed = [e for i in range(40) for e in scene_examples(0, i, error_rate=0.0)
             if e.task == "ev" and e.rles and e.kind != "ev_vague"]
    rejected = sum(e.label == "reject" for e in boxed)
    assert 0.35 < rejected / len(boxed) < 0.65, (rejected, len(boxed))


def test_adjudicated_verdicts_are_the_majority_of_independent_annotators_and_err_less():
    examples = [e for i in range(30) for e in scene_examples(0, i, error_rate=0.2)]
    single = sum(e.label != e.correct for e in examples) / len(examples)
    adjudicated = sum(e.gold != e.correct for e in examples) / len(examples)
    # One annotator errs at 0.2; a majority of three at 3 * 0.2**2 * 0.8 + 0.2**3 = 0.104.
    assert 0.14 < single < 0.26 and adjudicated < 0.15 and adjudicated < single - 0.04
    assert all(e.gold for e in examples)
    alone = [e for i in range(5) for e in scene_examples(0, i, error_rate=0.2, adjudicators=1)]
    assert all(e.gold == e.label for e in alone)


def test_corrections_imply_good_mv_and_ev_examples(scene_image, scene_rles):
    examples = correction_examples(scene_image, "yellow shape", added=scene_rles[:1], final=scene_rles)
    assert [(e.task, e.label, len(e.rles)) for e in examples] == [("mv", "accept", 1), ("ev", "accept", 2)]


def _write_examples(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    lines = []
    for index in range(3):
        examples = list(scene_examples(0, index))
        name = f"scene_{index}.png"
        examples[0].image.save(images / name)
        lines += [json.dumps({"task": e.task, "image": name, "phrase": e.phrase, "rles": e.rles, "label": e.label,
                              "gold": e.gold}) for e in examples]
    path = tmp_path / "examples.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, images


def test_bad_example_lines_are_named(tmp_path):
    path, images = _write_examples(tmp_path)
    good = path.read_text().splitlines()
    assert len(load_examples(path, images)) == len(good)
    path.write_text(good[0] + "\n" + json.dumps({**json.loads(good[1]), "label": "maybe"}) + "\n")
    with pytest.raises(ValueError, match=r"examples.jsonl:2: .*'maybe'"):
        load_examples(path, images)
    for witness, bad in (("sam3_presence", 1.5), ("sam3_uncovered", -0.1)):
        path.write_text(json.dumps({**json.loads(good[0]), witness: bad}) + "\n")
        with pytest.raises(ValueError, match=rf"examples.jsonl:1: {witness} must be a number in \[0, 1\]"):
            load_examples(path, images)
    path.write_text(json.dumps({**json.loads(good[0]), "sam3_best_unboxed": "high"}) + "\n")
    with pytest.raises(ValueError, match=r"examples.jsonl:1: sam3_best_unboxed must be a number in \[0, 1\]"):
        load_examples(path, images)
    for margin in (-1.5, "better"):
        path.write_text(json.dumps({**json.loads(good[0]), "sam3_competing_margin": margin}) + "\n")
        with pytest.raises(ValueError, match=r"examples.jsonl:1: sam3_competing_margin must be a number in \[-1, 1\]"):
            load_examples(path, images)
    for count in (-1, 1.5, True):
        path.write_text(json.dumps({**json.loads(good[0]), "sam3_proposals": count}) + "\n")
        with pytest.raises(ValueError, match=r"examples.jsonl:1: sam3_proposals must be an integer >= 0"):
            load_examples(path, images)
    ev = next(json.loads(line) for line in good if json.loads(line)["task"] == "ev")
    mv = next(json.loads(line) for line in good if json.loads(line)["task"] == "mv")
    for bad in ({**ev, "unboxed_rles": "all of them"}, {**mv, "unboxed_rles": []}):
        path.write_text(json.dumps(bad) + "\n")
        with pytest.raises(ValueError, match=r"examples.jsonl:1: unboxed_rles must be a list of RLE masks, on an EV"):
            load_examples(path, images)
    for bad in ([[1, 2]], [{"size": [1, 1], "counts": "1"}]):  # not an RLE; not of the image's size
        path.write_text(json.dumps({**ev, "unboxed_rles": bad}) + "\n")
        with pytest.raises(ValueError, match=r"examples.jsonl:1: unboxed_rles: "):
            load_examples(path, images)
    boxed = next(row for row in map(json.loads, good) if row["task"] == "ev" and row["rles"])
    one_unboxed = {**boxed, "unboxed_rles": boxed["rles"][:1]}
    path.write_text(json.dumps({**one_unboxed, "unboxed_margins": [0.25]}) + "\n")
    assert load_examples(path, images)[0].unboxed_margins == [0.25]
    for bad in ({**ev, "unboxed_rles": None, "unboxed_margins": []},  # margins of nothing
                {**one_unboxed, "unboxed_margins": [0.1, 0.1]}, {**one_unboxed, "unboxed_margins": ["high"]},
                {**one_unboxed, "unboxed_margins": [1.5]}):
        path.write_text(json.dumps(bad) + "\n")
        with pytest.raises(ValueError, match=r"examples.jsonl:1: unboxed_margins must be a number in \[-1, 1\] per"):
            load_examples(path, images)


def test_absence_before_and_after_a_human_check_is_calibrated_on_its_own_questions(scene_image, scene_rles):
    def ev(kind, rles=()):
        return Example("ev", scene_image, "red circle", list(rles), "accept", "accept", kind)

    engine = [ev("engine_before_check"), ev("engine_zero_boxes"), ev("engine_after_mv", scene_rles[:1]),
              ev("outcome_before_check")]
    groups = {name: member.tolist() for name, member in threshold_groups("ev", engine).items()}
    assert groups == {"ev": [False, False, True, False], "ev_zero": [True, False, False, True],
                      "ev_zero_after_check": [False, True, False, False]}
    # Questions that do not say when they were asked (the synthetic set) serve both claims.
    synthetic = [ev("ev_zero_absent"), ev("ev_complete", scene_rles[:1])]
    groups = {name: member.tolist() for name, member in threshold_groups("ev", synthetic).items()}
    assert groups["ev_zero"] == groups["ev_zero_after_check"] == [True, False]


def test_each_ev_claim_is_split_by_whether_mv_is_sure_every_unboxed_proposal_is_wrong(scene_image, scene_rles):
    def ev(kind, rles=()):
        return Example("ev", scene_image, "red circle", list(rles), "accept", "accept", kind)

    engine = [ev("engine_before_check"), ev("engine_before_check"), ev("engine_after_mv", scene_rles[:1]),
              ev("engine_zero_boxes")]
    groups = {name: member.tolist() for name, member in
              threshold_groups("ev", engine, np.array([True, False, True, False])).items()}
    assert groups == {"ev": [False, False, False, False], "ev_unboxed_explained": [False, False, True, False],
                      "ev_zero": [False, True, False, False], "ev_zero_unboxed_explained": [True, False, False, False],
                      "ev_zero_after_check": [False, False, False, True],
                      "ev_zero_after_check_unboxed_explained": [False, False, False, False]}


def test_each_absence_claim_is_split_again_by_whether_both_models_see_the_concept(scene_image, scene_rles):
    def ev(kind, sam3_presence, rles=()):
        return Example("ev", scene_image, "red circle", list(rles), "accept", "accept", kind,
                       sam3_presence=sam3_presence)

    engine = [ev("engine_before_check", 0.9), ev("engine_before_check", 0.9), ev("engine_before_check", 0.2),
              ev("engine_after_mv", 0.9, scene_rles[:1])]
    p_accept = np.array([0.3, 0.7, 0.3, 0.3])  # zero boxes: the verifier sees the concept where P(absent) < 0.5
    groups = {name: member.tolist() for name, member in
              threshold_groups("ev", engine, np.array([True, True, True, True]), p_accept).items()}
    assert groups["ev_zero_unboxed_explained_seen"] == [True, False, False, False]  # both see it
    assert groups["ev_zero_unboxed_explained"] == [False, True, True, False]  # one of them does not
    assert groups["ev_unboxed_explained"] == [False, False, False, True] and "ev_unboxed_explained_seen" not in groups


def test_another_phrase_explains_a_proposal_only_once_a_human_check_rejected_it(scene_image, scene_rles):
    preferred = calibration.PREFERRED_ELSEWHERE

    def question(kind, margins):
        return Example("ev", scene_image, "yellow shape", [], "accept", kind=kind, unboxed_rles=scene_rles[:1],
                       unboxed_margins=margins)

    questions = [question("engine_zero_boxes", [preferred]), question("engine_before_check", [preferred]),
                 question("engine_zero_boxes", [preferred - 0.05]), question("engine_zero_boxes", None)]
    unsure = {mask_key(q, q.unboxed_rles[0]): 0.6 for q in questions}  # MV is not sure it is wrong
    assert explained_questions(None, None, None, questions, unsure, 0.1, temperature=1.0, size=64,
                               device="cpu").tolist() == [True, False, False, False]


def test_recalibration_splits_the_claims_where_the_questions_list_what_they_leave_unboxed(tmp_path,
                                                                                         tiny_checkpoint):
    from verifiers.calibrate import main

    path, images = _write_examples(tmp_path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    masks_of_image = {}
    for row in rows:
        if row["task"] == "mv":
            masks_of_image.setdefault(row["image"], []).append(row["rles"][0])
    # Unboxed: every mask MV was asked about on the image, mostly under another phrase (so asked again here).
    engine = [{**row, "kind": "engine_before_check" if not row["rles"] else "engine_after_mv",
               "unboxed_rles": [m for m in masks_of_image[row["image"]] if m not in row["rles"]][:2]}
              for row in rows if row["task"] == "ev"]
    vacuous = [{**row, "unboxed_rles": []} for row in engine]  # nothing left unboxed: always the first kind
    path.write_text("".join(json.dumps(row) + "\n" for row in
                            [r for r in rows if r["task"] == "mv"] + (engine + vacuous) * 2))
    out = tmp_path / "split"
    assert main(["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--examples", str(path), "--images",
                 str(images), "--target-precision", "0.5", "--drop-precision", "0.5", "--min-support", "1",
                 "--calibration-fraction", "0.5"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    claims = ("ev", "ev_zero", "ev_zero_after_check")
    split = (*claims, *(c + "_unboxed_explained" for c in claims))
    # Each absence claim once more where both models see the concept (none do here: no SAM 3 presence).
    assert set(manifest["thresholds"]) == {"mv", "mv_reject", *split,
                                           *(name + "_seen" for name in split if name.startswith("ev_zero"))}
    report = manifest["metrics"]["ev"]["thresholds"]

    def asked(name):
        return sum(report[n]["n_calibration"] + report[n]["n_test"] for n in (name, name + "_seen") if n in report)

    assert all(asked(name + "_seen") == 0 for name in split if name.startswith("ev_zero"))
    first_kind = sum(asked(c + "_unboxed_explained") for c in ("ev", "ev_zero"))
    rest = sum(asked(c) for c in ("ev", "ev_zero"))
    assert first_kind + rest == 2 * (len(engine) + len(vacuous)) and first_kind >= 2 * len(vacuous)


def test_heldout_split_keeps_each_image_and_phrase_on_one_side(tmp_path):
    path, images = _write_examples(tmp_path)
    train, held = split_heldout(load_examples(path, images), 0.3)
    assert train and held
    assert not {(e.source["image"], e.phrase) for e in train} & {(e.source["image"], e.phrase) for e in held}


@pytest.mark.slow
def test_training_can_show_a_verifier_larger_composites(tmp_path):
    from verifiers.train import main

    path, images = _write_examples(tmp_path)
    (tmp_path / "more").mkdir()
    more, more_images = _write_examples(tmp_path / "more")
    args = ["--examples", str(path), "--images", str(images), "--examples", str(more), "--images", str(more_images),
            "--init", "preset:tiny?seed=0", "--base-steps", "1", "--batch-size", "4", "--heldout-fraction", "0.3",
            "--warmup-steps", "1"]
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path / "bad"), "--render-size", "200"])
    with pytest.raises(SystemExit):  # a file without its folder
        main([*args[:6], "--out", str(tmp_path / "bad")])
    assert main([*args, "--out", str(tmp_path / "out"), "--render-size", "224"]) == 0
    verifier = load_verifier(str(tmp_path / "out"), cache_dir=tmp_path)
    assert [s["path"] for s in verifier.manifest["training"]["data"]["sources"]] == [str(path), str(more)]
    assert verifier.render_size == 224 and verifier.manifest["training"]["config"]["render_size"] == 224
    vision = verifier.model.get_base_model().config.vision_config
    assert (vision.image_size, vision.patch_size) == (224, 32)  # the same 7 x 7 patch grid as at 112 px


@pytest.mark.slow
def test_train_command_writes_a_calibrated_checkpoint_with_a_report(tmp_path):
    from verifiers.train import main

    path, images = _write_examples(tmp_path)
    out = tmp_path / "out"
    assert main(["--examples", str(path), "--images", str(images), "--out", str(out), "--init", "preset:tiny?seed=0",
                 "--base-steps", "2", "--adapter-steps", "2", "--batch-size", "4", "--eval-every", "2", "--heldout-fraction", "0.3",
                 "--min-support", "5", "--warmup-steps", "1"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["temperature"]) == {"mv", "ev"}
    assert set(manifest["thresholds"]) == {"mv", "mv_reject", "ev", "ev_zero", "ev_zero_after_check"}
    assert manifest["drop_precision"] == 0.995
    assert manifest["metrics"]["mv"]["thresholds"]["mv_reject"]["drop_precision"] == 0.995
    assert manifest["target_precision"] == 0.98
    assert manifest["training"]["config"]["adapter_steps"] == 2 and manifest["training"]["config"]["shuffle_prob"] == 1
    assert manifest["training"]["data"]["init"] == {"uri": "preset:tiny?seed=0",
                                                    "model_version": load_verifier("preset:tiny?seed=0",
                                                                                   cache_dir=tmp_path).version}
    for task in ("mv", "ev"):
        report = manifest["metrics"][task]
        assert {"accuracy", "cohen_kappa", "confusion", "precision_at_coverage", "thresholds"} <= set(report)
        assert report["calibration_labels"] == "adjudicated"
    # The best evaluation is kept: the base-stage one, or the final one after the adapters if it is as good.
    assert [row["stage"] for row in manifest["learning_curve"]] in (["base"], ["base", "final"])
    readme = (out / "README.md").read_text()
    assert "Learning curve" in readme and f"trained from `{manifest['training']['data']['init']['model_version']}`" \
        in readme
    assert load_verifier(str(out), cache_dir=tmp_path).manifest["thresholds"] == manifest["thresholds"]


@pytest.mark.skipif(not (CHECKPOINT / "manifest.json").is_file(), reason="no committed tiny checkpoint")
def test_committed_tiny_checkpoint_loads_with_its_calibration(tmp_path):
    verifier = load_verifier(str(CHECKPOINT), cache_dir=tmp_path)
    manifest = verifier.manifest
    assert manifest["target_precision"] == 0.98
    claims = ("ev", "ev_zero", "ev_zero_after_check")
    split = (*claims, *(c + "_unboxed_explained" for c in claims))
    assert set(manifest["thresholds"]) == {"mv", "mv_reject", *split,
                                           *(name + "_seen" for name in split if name.startswith("ev_zero"))}
    assert manifest["drop_precision"] == 0.995
    assert manifest["metrics"]["mv"]["thresholds"]["mv_reject"]["drop_precision"] == 0.995
    assert all(t is None or 0 < t <= 1 for t in manifest["thresholds"].values())
    assert manifest["thresholds"]["ev_zero_unboxed_explained"] is not None, \
        "the committed verifier settles confident negatives"
    assert manifest["thresholds"]["mv_reject"] is not None, "the committed verifier spares humans sure rejections"
    # Chosen on the calibration share; the report share must not refute them (one-sided 95%).
    for task in ("mv", "ev"):
        for name, row in manifest["metrics"][task]["thresholds"].items():
            if row["threshold"] is None or not row["test_coverage"]:
                continue
            n = round(row["test_coverage"] * row["n_test"])
            wrong = round((1 - row["test_precision_vs_adjudicated"]) * n)
            target = manifest["drop_precision"] if name == "mv_reject" else manifest["target_precision"]
            assert 1 - calibration.wilson_lower(wrong, n) >= target, (name, row)
    # Fine-tuned from the synthetic-trained verifier on, and calibrated on, the questions the engine asks.
    assert manifest["training"]["data"]["init"]["model_version"].startswith("verifier-")
    sources = manifest["calibration"]["data"]["sources"]
    assert sources and all(s["made_by"]["source"] == "verifiers.engine_questions" for s in sources)
    assert manifest["learning_curve"] and (CHECKPOINT / "README.md").is_file()
    assert sum(p.stat().st_size for p in CHECKPOINT.rglob("*") if p.is_file()) < 20_000_000


@pytest.mark.slow
def test_recalibration_makes_a_new_version_that_names_its_source(tmp_path, tiny_checkpoint):
    from verifiers.calibrate import main

    path, images = _write_examples(tmp_path)
    (tmp_path / "more").mkdir()
    more, more_images = _write_examples(tmp_path / "more")  # another world: the same image names, other folder
    out = tmp_path / "recalibrated"
    with pytest.raises(SystemExit):  # a file without its folder
        main(["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--examples", str(path), "--examples",
              str(more), "--images", str(images)])
    assert main(["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--examples", str(path), "--images",
                 str(images), "--examples", str(more), "--images", str(more_images), "--target-precision", "0.9",
                 "--min-support", "3", "--calibration-fraction", "0.5"]) == 0
    source = json.loads((tiny_checkpoint / "manifest.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    data = manifest["calibration"]["data"]
    assert [s["path"] for s in data["sources"]] == [str(path), str(more)]
    assert sum(data["n"].values()) == 2 * len(path.read_text().splitlines())
    assert f"on {path} + {more} (same weights)" in (out / "README.md").read_text()
    assert manifest["calibration"]["from_version"] == source["model_version"] != manifest["model_version"]
    assert manifest["target_precision"] == 0.9
    assert set(manifest["thresholds"]) == {"mv", "mv_reject", "ev", "ev_zero", "ev_zero_after_check"}
    assert manifest["drop_precision"] == 0.995
    assert manifest["metrics"]["mv"]["thresholds"]["mv_reject"]["drop_precision"] == 0.995
    assert manifest["files"]["base/model.safetensors"] == source["files"]["base/model.safetensors"]  # same weights
    assert manifest["with_sam3"] == {}  # no question carried SAM 3's witnesses


@pytest.mark.slow
def test_routing_questions_with_sam3s_witnesses_calibrate_absence_on_all_of_them(tmp_path, tiny_checkpoint):
    from verifiers.calibrate import main

    path, images = _write_examples(tmp_path)
    zero_box = [json.loads(line) for line in path.read_text().splitlines()]
    zero_box = [row for row in zero_box if row["task"] == "ev" and not row["rles"]]
    # As routing asks them, with SAM 3's witnesses: here two that mostly agree with the verdict.
    before = [{**row, "kind": "engine_before_check", "sam3_presence": 0.1 if row["gold"] == "accept" else 0.9,
               "sam3_best_unboxed": 0.2 if row["gold"] == "accept" else 0.7} for row in zero_box * 4]
    path.write_text(path.read_text() + "".join(json.dumps(row) + "\n" for row in before))
    out = tmp_path / "recalibrated"
    assert main(["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--examples", str(path), "--images",
                 str(images), "--target-precision", "0.9", "--min-support", "3", "--calibration-fraction", "0.5"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    # Only the claim whose every question carries the witnesses is stacked.
    assert set(manifest["with_sam3"]) == {"ev_zero"}
    weights = manifest["with_sam3"]["ev_zero"]
    assert set(weights) == {"p_accept_logit", "sam3_presence_logit", "sam3_best_unboxed_logit", "bias"}
    assert weights["sam3_presence_logit"] < 0  # high presence speaks against absence
    report = manifest["metrics"]["ev"]["thresholds"]
    assert report["ev_zero"]["with_sam3"] and not report["ev_zero_after_check"]["with_sam3"]
    assert report["ev_zero"]["n_calibration"] + report["ev_zero"]["n_test"] == len(before)
    adapter = json.loads((out / "adapters" / "mv" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] is None  # no local path of the machine that saved it
    assert manifest["metrics"]["mv"]["calibration_labels"] == "adjudicated"  # the lines carry "gold"
    assert load_verifier(str(out), cache_dir=tmp_path).manifest["model_version"] == manifest["model_version"]


def test_recalibration_refuses_a_target_it_cannot_mean(tmp_path, tiny_checkpoint):
    from verifiers.calibrate import main

    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "x"), "--synthetic",
              "--target-precision", "1.5"])


def test_training_questions_shuffle_the_options_and_target_the_right_letter(scene_image, scene_rles):
    import random

    from verifiers.model import tiny_processor
    from verifiers.options import LETTERS, MV_OPTIONS
    from verifiers.synthetic import Example
    from verifiers.training import batch_inputs

    processor = tiny_processor()
    examples = [Example("mv", scene_image, "yellow square", [scene_rles[0]], "accept")] * 12
    inputs, targets = batch_inputs(processor, examples, size=112, rng=random.Random(0), shuffle_prob=1.0)
    assert len(set(targets.tolist())) > 1  # "accept" sits behind different letters
    tokens = processor.tokenizer
    for row, target in zip(inputs["input_ids"], targets.tolist()):
        words = tokens.convert_ids_to_tokens(row)
        at = words.index(LETTERS[target], words.index("Options"))
        assert words[at + 2] == "Accept" and words[at + 3] != "as"  # "(X) Accept", not "Accept as text"
    _, canonical = batch_inputs(processor, examples, size=112, rng=None, shuffle_prob=0.0)
    assert canonical.tolist() == [MV_OPTIONS.index("accept")] * 12


def test_registry_fields_name_the_version_by_its_checkpoint(tiny_checkpoint):
    from verifiers.model import registry_fields, verify_checkpoint

    manifest = verify_checkpoint(tiny_checkpoint)
    fields = registry_fields("s3://models/verifiers/tiny-v1", manifest)
    assert fields["name"] == "verifier-tiny-v1" and fields["kind"] == "verifier"
    assert fields["manifest"]["thresholds"] == {"mv": 0.9, "ev": None}


def test_data_worker_streams_split_the_synthetic_world_without_repeats():
    import itertools

    from verifiers.train import _synthetic_sources
    from verifiers.training import TrainConfig

    sources, heldout, _ = _synthetic_sources(TrainConfig(shuffle_buffer=4), world_seed=0, heldout_per_task=3,
                                             error_rate=0.03)
    assert {t: len(v) for t, v in heldout.examples.items()} == {"mv": 3, "ev": 3}
    for task, source in sources.items():
        single = [(e.source["scene"], e.phrase, e.kind) for e in itertools.islice(source(), 12)]
        assert single == [(e.source["scene"], e.phrase, e.kind) for e in itertools.islice(source(0, 1), 12)]
        scenes = [{e.source["scene"] for e in itertools.islice(source(worker=w, workers=2), 30)} for w in (0, 1)]
        assert scenes[0] and scenes[1] and not scenes[0] & scenes[1], task
        assert all(e.task == task for e in itertools.islice(source(worker=1, workers=2), 10))


@pytest.mark.slow
def test_training_with_data_workers_writes_a_checkpoint_that_loads_on_cpu(tmp_path, caplog):
    import logging

    from verifiers.train import main

    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="verifiers.training"):
        assert main(["--synthetic", "--out", str(out), "--name", "w", "--base-steps", "3", "--adapter-steps", "2",
                     "--batch-size", "4", "--eval-every", "3", "--heldout-per-task", "12", "--shuffle-buffer", "8",
                     "--min-support", "3", "--warmup-steps", "1", "--data-workers", "2", "--device", "cpu"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    config = manifest["training"]["config"]
    assert config["data_workers"] == 2 and config["device"] == "cpu"
    assert manifest["training"]["steps"] in (3, 3 + 2 + 2)  # the best evaluation: base stage or final
    assert "(2 data workers, cpu)" in caplog.text
    verifier = load_verifier(str(out), cache_dir=tmp_path, device="cpu")
    assert verifier.manifest["model_version"] == manifest["model_version"]
    assert all(p.device.type == "cpu" for p in verifier.model.parameters())


def test_device_auto_picks_cuda_only_when_there_is_one():
    import torch

    from verifiers.training import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_balanced_stream_reaches_the_accept_share_and_keeps_the_natural_one_at_zero():
    import itertools
    import random

    from verifiers.synthetic import example_stream
    from verifiers.training import balanced

    natural = list(itertools.islice(example_stream(0, task="mv", error_rate=0.0), 200))
    assert sum(e.label == "accept" for e in natural) / len(natural) < 0.35
    drawn = list(itertools.islice(balanced(iter(natural * 5), ("accept",), 0.5, random.Random(0)), 300))
    assert 0.4 < sum(e.label == "accept" for e in drawn) / len(drawn) < 0.6
    assert list(itertools.islice(balanced(iter(natural), ("accept",), 0.0, random.Random(0)), 200)) == natural


def test_heldout_calibration_share_interleaves_calibration_and_test():
    from verifiers.training import Heldout

    examples = {"mv": list(range(100))}
    assert Heldout(examples).halves("mv") == (list(range(0, 100, 2)), list(range(1, 100, 2)))
    calib, test = Heldout(examples, calibration_fraction=0.75).halves("mv")
    assert len(calib) == 75 and len(test) == 25 and sorted(calib + test) == list(range(100))
    assert max(test) - min(test) > 80  # spread over the set, not a block


def test_open_cross_attention_gates_let_the_image_into_a_random_tiny_verifier(scene_image, scene_rles):
    import torch

    from verifiers.model import build_tiny_verifier, open_cross_attention_gates, option_logits
    from verifiers.synthetic import Example
    from verifiers.training import _image_token, batch_inputs

    verifier = build_tiny_verifier(0)
    examples = [Example("mv", scene_image, "yellow shape", [rle], "accept") for rle in scene_rles]
    inputs, _ = batch_inputs(verifier.processor, examples, size=112, rng=None, shuffle_prob=0.0)
    noise = {**inputs, "pixel_values": torch.randn_like(inputs["pixel_values"])}

    def image_effect() -> float:
        with torch.no_grad():
            a, b = (option_logits(verifier.model, x, verifier.letter_ids, 5,
                                  image_token_id=_image_token(verifier.processor)) for x in (inputs, noise))
        return float((a - b).abs().max())

    assert image_effect() == 0.0  # Mllama's zero gates: blind to the image
    assert open_cross_attention_gates(verifier.model, 1.0) == 4
    assert image_effect() > 1e-3


def test_calibration_asks_each_question_as_the_verifier_will_be_asked_in_routing(scene_image, scene_rles):
    """A verifier trained with ev.v1 (one-pixel boxes) is calibrated on ev.v1 renders, not on the current ev.v2."""
    import numpy as np

    from verifiers import calibration
    from verifiers.model import EVItem, build_tiny_verifier, open_cross_attention_gates
    from verifiers.options import EV_OPTIONS, TASKS
    from verifiers.synthetic import Example
    from verifiers.training import Heldout, heldout_logits

    verifier = build_tiny_verifier(0)
    open_cross_attention_gates(verifier.model, 1.0)  # let the image (and so the box width) matter
    verifier.manifest["template_versions"] = {"mv": "mv.v1", "ev": "ev.v1"}
    examples = [Example("ev", scene_image, "yellow shape", scene_rles[:k], "accept") for k in (1, 2)]
    heldout = Heldout({"ev": examples})
    own = {t: verifier.template(t) for t in TASKS}

    def logits(templates):
        return heldout_logits(verifier.model, verifier.processor, verifier.letter_ids, examples,
                              size=verifier.render_size,
                              encoded=heldout.encoded("ev", verifier.processor, size=verifier.render_size,
                                                      templates=templates))

    verifier.manifest["temperature"] = {}  # raw probabilities, as the logits below
    asked = np.array([[p[o] for o in EV_OPTIONS] for p in verifier.score_ev(
        [EVItem(e.image, e.rles, e.phrase) for e in examples])])

    def probabilities(templates):
        return calibration.softmax(logits(templates))

    np.testing.assert_allclose(probabilities(own), asked, atol=1e-5)
    assert np.abs(probabilities(None) - asked).max() > 1e-5, "the current template draws other boxes"
    # A one-off calibration on a large set encodes as it goes: the same logits, nothing kept in memory.
    once = Heldout({"ev": examples}, keep_encoded=False)
    np.testing.assert_array_equal(heldout_logits(
        verifier.model, verifier.processor, verifier.letter_ids, examples, size=verifier.render_size,
        encoded=once.encoded("ev", verifier.processor, size=verifier.render_size, templates=own)), logits(own))
    assert heldout._encoded and not once._encoded


def test_every_kind_of_question_gets_its_test_share(scene_image):
    from verifiers.training import Heldout

    # Engine questions come in a fixed rhythm (before the check, after it): a plain interleave would put every
    # question of one kind on one side.
    examples = [Example("ev", scene_image, "red circle", [], "accept", kind=kind)
                for _ in range(40) for kind in ("engine_before_check", "engine_zero_boxes")]
    calib, test = Heldout({"ev": examples}, calibration_fraction=0.5).halves("ev")
    assert sorted(calib + test) == list(range(80))
    for kind in ("engine_before_check", "engine_zero_boxes"):
        assert sum(examples[i].kind == kind for i in test) == 20
