"""The questions the engine really asks a verifier, answered by simulated annotators: held-out verdicts for
calibrating thresholds on the distribution the routing meets.

    PYTHONPATH=platform:. python -m verifiers.engine_questions --sam3 checkpoints/sam3-tiny \\
        --gold data/calib-world5/gold.json --out data/calib-world5/examples.jsonl [--max-instances 3] \\
        [--refine-with checkpoints/sam3-tracker-tiny]

``verifiers.synthetic`` builds balanced questions to teach a verifier (as many incomplete boxed sets as complete
ones). Thresholds must instead be chosen on the items routing will judge, as a project's Phase 1 verdicts would
give them: here, for every (image, phrase) pair of a gold file, SAM 3's proposals with the engine's settings (top
``max_instances`` after dropping duplicates, score threshold 0, masks drawn again by the click tracker with
``--refine-with``, as the demo and the routing benchmark propose), an MV question per proposed mask, and the EV
question a human check asks next, on the masks the first annotator accepted (zero boxes when none); and, first, the
zero-boxes EV question routing asks of every datapoint before a human looks (``engine_before_check``). Every EV row
carries SAM 3's witnesses (verifiers.calibration: its presence score, its best score among the proposals the question
does not box, how many proposals it made, its best score among those the cap left out and how much better it likes
another phrase of the image for the unboxed proposals, ``competing_margin``, and the share of the image its semantic
mask covers outside the boxed masks, ``uncovered_share``), which routing weighs with the verifier's answer, and
those unboxed proposals (``unboxed_rles``: calibration asks MV about them) with each one's margin
(``unboxed_margins``, calibration.competing_margins). ``label`` is the first annotator's verdict (3% mistakes by
default), ``gold`` the majority of ``adjudicators`` independent annotators, as a gold set is triple-annotated. The
file is what ``manage.py export_verifier_examples`` writes, so ``python -m verifiers.calibrate --examples FILE
--images DIR`` reads it; the gold file's world must be one the routing is not measured on.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

from PIL import Image

from model.sam3 import DEFAULT_DEDUPE_IOU
from model.sam3.refine import refine_proposals
from verifiers.calibration import competing_margins, uncovered_share
from verifiers.synthetic import adjudicated, annotators, require_simulated_annotator


def engine_questions(gold_path: str | Path, predictor, *, max_instances: int = 3, score_threshold: float = 0.0,
                     dedupe_iou: float | None = DEFAULT_DEDUPE_IOU, error_rate: float = 0.03, adjudicators: int = 3,
                     seed: int = 0, click_predictor=None) -> Iterator[dict]:
    """JSONL rows (``verifiers.training.load_examples``) for every pair of ``gold_path``, image by image; with
    ``click_predictor`` (a ClickPredictor) on the masks it draws again (model.sam3.refine), as a project with
    ``refine_masks`` proposes."""
    require_simulated_annotator()
    from simulated_annotator.decisions import answer_exhaustivity, answer_mask_verification
    from simulated_annotator.ground_truth import GroundTruth

    gold_path = Path(gold_path)
    truth = GroundTruth.from_gold(gold_path)
    configs = annotators(error_rate, seed, adjudicators)
    phrases_by_image: dict[str, list[str]] = {}
    for entry in json.loads(gold_path.read_text())["images"]:
        phrases_by_image.setdefault(entry["file_name"], []).append(entry["text_input"])
    for name, phrases in sorted(phrases_by_image.items()):
        with Image.open(gold_path.parent / name) as handle:
            image = handle.convert("RGB")
        media = {"sha256": truth.sha256_for_name(name), "name": name}
        proposals = predictor.propose(image, phrases, score_threshold=score_threshold, max_instances=max_instances,
                                      dedupe_iou=dedupe_iou)
        if click_predictor is not None:
            proposals = refine_proposals(click_predictor, image, proposals, media_key=name, dedupe_iou=dedupe_iou)
        found = [[(i.rle, i.score) for i in proposal.instances] for proposal in proposals]
        for index, (phrase, proposal) in enumerate(zip(phrases, proposals)):
            others = [instance for j, own in enumerate(found) if j != index for instance in own]
            datapoint = {"media": media, "phrase": phrase}
            margins = competing_margins(found[index], others)
            # Routing's first question of every datapoint: zero boxes, before anyone looked (is it absent?).
            answers = [answer_exhaustivity({"datapoint": datapoint, "masks": []}, truth, a) for a in configs]
            yield {"task": "ev", "image": name, "phrase": phrase, "rles": [], "label": answers[0].decision,
                   "correct": answers[0].correct, "kind": "engine_before_check", "gold": adjudicated(answers),
                   "sam3_presence": proposal.presence_score,
                   "sam3_best_unboxed": max((i.score for i in proposal.instances), default=0.0),
                   "sam3_proposals": len(proposal.instances), "sam3_best_beyond_cap": proposal.best_beyond_cap,
                   "sam3_competing_margin": min(margins, default=0.0),
                   "sam3_uncovered": uncovered_share(proposal.semantic_rle, []),
                   "unboxed_rles": [i.rle for i in proposal.instances], "unboxed_margins": margins}
            accepted, rejected = [], []
            for instance, margin in zip(proposal.instances, margins):
                task = {"datapoint": datapoint, "mask": {"rle": instance.rle}}
                answers = [answer_mask_verification(task, truth, a) for a in configs]
                if answers[0].decision == "accept":
                    accepted.append(instance.rle)
                else:
                    rejected.append((instance, margin))
                yield {"task": "mv", "image": name, "phrase": phrase, "rles": [instance.rle],
                       "label": answers[0].decision, "correct": answers[0].correct, "kind": "engine_proposal",
                       "gold": adjudicated(answers)}
            task = {"datapoint": datapoint, "masks": [{"rle": rle} for rle in accepted]}
            answers = [answer_exhaustivity(task, truth, a) for a in configs]
            yield {"task": "ev", "image": name, "phrase": phrase, "rles": accepted, "label": answers[0].decision,
                   "correct": answers[0].correct, "kind": "engine_after_mv" if accepted else "engine_zero_boxes",
                   "gold": adjudicated(answers), "sam3_presence": proposal.presence_score,
                   "sam3_best_unboxed": max((i.score for i, _ in rejected), default=0.0),
                   "sam3_proposals": len(proposal.instances), "sam3_best_beyond_cap": proposal.best_beyond_cap,
                   "sam3_competing_margin": min((m for _, m in rejected), default=0.0),
                   "sam3_uncovered": uncovered_share(proposal.semantic_rle, accepted),
                   "unboxed_rles": [i.rle for i, _ in rejected], "unboxed_margins": [m for _, m in rejected]}


def meta_path(examples: str | Path) -> Path:
    """Where the provenance of an examples file lives: EXAMPLES.meta.json beside it."""
    examples = Path(examples)
    return examples.with_name(examples.stem + ".meta.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verifiers.engine_questions", description=__doc__.splitlines()[0])
    parser.add_argument("--sam3", required=True,
                        help="the SAM 3 that proposes: checkpoint folder, s3:// URI or preset:<name>")
    parser.add_argument("--gold", type=Path, required=True, help="gold.json of a world (images beside it)")
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    parser.add_argument("--max-instances", type=int, default=3)
    parser.add_argument("--score-threshold", type=float, default=0.0)
    parser.add_argument("--dedupe-iou", type=float, default=DEFAULT_DEDUPE_IOU, help="as a project's dedupe_iou")
    parser.add_argument("--refine-with", default=None, metavar="TRACKER",
                        help="click tracker checkpoint that draws every proposed mask again (a project's refine_masks)")
    parser.add_argument("--error-rate", type=float, default=0.03, help="each simulated annotator's mistake rate")
    parser.add_argument("--adjudicators", type=int, default=3, help="annotators per gold verdict")
    parser.add_argument("--seed", type=int, default=0, help="the simulated annotators' seed")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/model-cache"))
    args = parser.parse_args(argv)
    import torch

    from model.sam3.build import resolve_model
    from model.sam3.interactive import ClickPredictor, resolve_tracker
    from model.sam3.predictor import ConceptPredictor

    torch.set_num_threads(1)
    predictor = ConceptPredictor(resolve_model(args.sam3, cache_dir=args.cache_dir))
    click_predictor = ClickPredictor(resolve_tracker(args.refine_with, cache_dir=args.cache_dir)) \
        if args.refine_with else None
    counts: Counter = Counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as handle:
        for row in engine_questions(args.gold, predictor, max_instances=args.max_instances,
                                    score_threshold=args.score_threshold, dedupe_iou=args.dedupe_iou,
                                    error_rate=args.error_rate,
                                    adjudicators=args.adjudicators, seed=args.seed, click_predictor=click_predictor):
            handle.write(json.dumps(row) + "\n")
            counts[f"{row['kind']}:{row['gold']}"] += 1
    meta = {"source": "verifiers.engine_questions", "sam3": predictor.version, "gold": str(args.gold),
            "max_instances": args.max_instances, "score_threshold": args.score_threshold, "dedupe_iou": args.dedupe_iou,
            "refined_with": click_predictor.version if click_predictor else None,
            "annotators": {"error_rate": args.error_rate, "adjudicators": args.adjudicators, "seed": args.seed},
            "questions": dict(sorted(counts.items()))}
    meta_path(args.out).write_text(json.dumps(meta, indent=2) + "\n")
    json.dump({"out": str(args.out), **meta}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
