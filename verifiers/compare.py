"""SAM 3 alone versus SAM 3 with the AI verifiers on a gold set (docs/data-engine.md §3, ablation table d).

    python -m verifiers.compare --gt GOLD.json --pred PRED.json --images DIR --verifier URI [--json OUT.json]
        [--presence PRED.presence.json]

PRED.json is SAM 3's predictions in the COCO results format (``python -m model.predict``), scored with the
SA-Co cgF1 evaluator (``model.eval``) three ways:

1. SAM 3 alone;
2. + EV presence: the verifier's presence, 1 − P(accept | zero boxes), replaces SAM 3's in
   score = query score × presence. With the presence file ``model.predict`` writes beside PRED.json
   (``PRED.presence.json``: SAM 3's presence of every pair, the query score of every prediction, and the
   instances whose query score passed but whose score fell below the threshold) the replacement is exact:
   every instance gets query score × EV presence, including those SAM 3's low presence had dropped. Without
   it (predictions from elsewhere), EV presence gates the pair instead (all its predictions dropped when EV
   presence < 0.5). The result's ``presence_mode`` ("exact" or "gate") says which was used;
3. + MV: additionally every kept mask that MV does not accept (P(accept) + P(accept as text) < --mv-threshold)
   is removed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from PIL import Image

SCORE_THRESHOLD = 0.5


PRESENCE_FORMAT = "dataengine.pair-presence.v1"  # model.predict's PRESENCE_FORMAT (not imported: no torch here)
QUERY_TOLERANCE = 1e-5  # score vs query score × presence, both from float32


def _pairs(gold: dict) -> list[dict]:
    return list(gold.get("images") or [])


def load_presence(path: str | Path, pred_path: str | Path | None = None) -> dict:
    """A ``PRED.presence.json`` document; ValueError when it is not one, or was written for another PRED.json."""
    try:
        document = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != PRESENCE_FORMAT:
        raise ValueError(f"{path}: not a presence file (format {PRESENCE_FORMAT!r})")
    if pred_path is not None and document.get("pred_sha256") is not None:
        digest = hashlib.sha256(Path(pred_path).read_bytes()).hexdigest()
        if digest != document["pred_sha256"]:
            raise ValueError(f"{path} was written for another predictions file than {pred_path}")
    return document


def exact_candidates(predictions: list[dict], presence: dict) -> list[dict]:
    """Every instance SAM 3 considered (query score >= the file's min score) with ``query_score`` and SAM 3's
    ``sam3_presence``: the predictions (their query scores from the presence file) and the ones below min score.

    ValueError when the presence file does not describe ``predictions`` (another file, or a min score above the
    evaluator's 0.5, which would leave out instances EV presence can keep).
    """
    if float(presence.get("min_score", 1.0)) > SCORE_THRESHOLD:
        raise ValueError(f"the presence file was written with min score {presence.get('min_score')} > "
                         f"{SCORE_THRESHOLD}: instances that EV presence would keep are missing "
                         f"(rerun model.predict with --min-score {SCORE_THRESHOLD} or lower)")
    pairs = {record["image_id"]: record for record in presence.get("pairs") or []}
    by_pair: dict = {}
    for prediction in predictions:
        by_pair.setdefault(prediction["image_id"], []).append(prediction)
    candidates: list[dict] = []
    for image_id, group in by_pair.items():
        record = pairs.get(image_id)
        if record is None or len(record.get("query_scores") or []) != len(group):
            raise ValueError(f"the presence file does not match the predictions of pair {image_id!r}")
        sam3_presence = float(record["presence_score"])
        for prediction, query in zip(group, record["query_scores"]):
            if abs(float(prediction["score"]) - float(query) * sam3_presence) > QUERY_TOLERANCE:
                raise ValueError(f"pair {image_id!r}: score {prediction['score']} is not query score {query} x "
                                 f"presence {sam3_presence}: the presence file belongs to other predictions")
            candidates.append({**prediction, "query_score": float(query), "sam3_presence": sam3_presence})
    for extra in presence.get("below_min_score") or []:
        record = pairs.get(extra["image_id"])
        if record is None:
            raise ValueError(f"the presence file has an instance of unknown pair {extra['image_id']!r}")
        candidates.append({**extra, "query_score": float(extra["query_score"]),
                           "sam3_presence": float(record["presence_score"])})
    return candidates


def apply_verifiers(verifier, gold: dict, predictions: list[dict], images_dir: str | Path, *,
                    sam3_presence: dict | None = None, mv_threshold: float = 0.5, batch_size: int = 32) -> dict:
    """The three prediction lists {"sam3", "ev_presence", "ev_presence_mv"} plus per-pair EV presence.

    ``sam3_presence``: the ``PRED.presence.json`` document of ``predictions`` (see ``load_presence``) for the exact
    replacement; without it EV presence gates pairs. In exact mode "ev_presence" holds every candidate instance
    with score = query score × EV presence (those under 0.5 are there, and the evaluator ignores them).
    """
    from verifiers.errors import VerifierInputError
    from verifiers.model import EVItem, MVItem, mv_accept_probability

    exact = sam3_presence is not None
    by_pair: dict = {}
    for prediction in (exact_candidates(predictions, sam3_presence) if exact else predictions):
        by_pair.setdefault(prediction["image_id"], []).append(prediction)
    images: dict[str, Image.Image] = {}

    def image_of(name: str) -> Image.Image:
        if name not in images:
            with Image.open(Path(images_dir) / name) as handle:
                images[name] = handle.convert("RGB")
        return images[name]

    pairs = _pairs(gold)
    presence: dict = {}
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        scores = verifier.score_ev([EVItem(image_of(p["file_name"]), [], p["text_input"]) for p in chunk])
        presence.update({p["id"]: 1.0 - s["accept"] for p, s in zip(chunk, scores)})

    with_ev: list[dict] = []
    for pair in pairs:
        ev_presence = presence[pair["id"]]
        for prediction in by_pair.get(pair["id"], []):
            updated = dict(prediction)
            if exact:
                updated["score"] = updated.pop("query_score") * ev_presence
                updated.pop("sam3_presence")
            elif ev_presence < 0.5:
                updated["score"] = 0.0
            with_ev.append(updated)

    kept = [p for p in with_ev if p["score"] >= SCORE_THRESHOLD and isinstance(p.get("segmentation"), dict)
            and "counts" in p["segmentation"]]
    names = {pair["id"]: pair for pair in pairs}
    mv_scores: dict[int, float] = {}
    for start in range(0, len(kept), batch_size):
        chunk = kept[start:start + batch_size]
        items, index = [], []
        for i, prediction in enumerate(chunk):
            pair = names.get(prediction["image_id"])
            if pair is None:
                continue
            items.append(MVItem(image_of(pair["file_name"]), prediction["segmentation"], pair["text_input"]))
            index.append(start + i)
        try:
            scores = verifier.score_mv(items)
        except VerifierInputError:  # one bad mask (e.g. empty): score them one by one, bad ones are rejected
            scores = []
            for item in items:
                try:
                    scores.extend(verifier.score_mv([item]))
                except VerifierInputError:
                    scores.append({"reject": 1.0})
        for i, s in zip(index, scores):
            mv_scores[id(kept[i])] = mv_accept_probability(s)
    with_mv = [p for p in with_ev if id(p) not in mv_scores or mv_scores[id(p)] >= mv_threshold]
    return {"sam3": predictions, "ev_presence": with_ev, "ev_presence_mv": with_mv, "presence": presence,
            "presence_mode": "exact" if exact else "gate", "mv_removed": len(with_ev) - len(with_mv)}


def default_presence_path(pred_path: str | Path) -> Path:
    """``PRED.presence.json`` beside ``PRED.json`` (model.predict's ``presence_path``)."""
    return Path(pred_path).with_suffix(".presence.json")


def compare(gt_paths: list[Path], pred_path: Path, images_dir: Path, verifier, *, mv_threshold: float = 0.5,
            presence_path: Path | None = None) -> dict:
    """cgF1 / IL_MCC / pmF1 for SAM 3 alone, + EV presence, + MV (see module docstring).

    ``presence_path``: SAM 3's presence file; by default ``PRED.presence.json`` when it exists (exact mode).
    """
    from model.eval.cgf1 import evaluate

    gold = json.loads(Path(gt_paths[0]).read_text())
    predictions = json.loads(Path(pred_path).read_text())
    if presence_path is None and default_presence_path(pred_path).is_file():
        presence_path = default_presence_path(pred_path)
    sam3_presence = load_presence(presence_path, pred_path) if presence_path is not None else None
    variants = apply_verifiers(verifier, gold, predictions, images_dir, sam3_presence=sam3_presence,
                               mv_threshold=mv_threshold)
    rows = {}
    for name in ("sam3", "ev_presence", "ev_presence_mv"):
        metrics = evaluate(list(gt_paths), variants[name]).to_json()
        flat = metrics.get("metrics", metrics)
        rows[name] = {key: flat.get(key) for key in ("cgF1", "IL_MCC", "positive_micro_F1")}
    return {"evaluator": "model.eval.cgf1 (SA-Co cgF1)", "verifier": getattr(verifier, "version", None),
            "presence_mode": variants["presence_mode"],
            "presence_file": str(presence_path) if presence_path is not None else None, "mv_threshold": mv_threshold,
            "mv_removed": variants["mv_removed"], "results": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verifiers.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=Path, action="extend", nargs="+", required=True)
    parser.add_argument("--pred", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--verifier", required=True, help="verifier checkpoint: folder, s3:// or preset:tiny")
    parser.add_argument("--presence", type=Path, default=None,
                        help="SAM 3's presence file from model.predict (default: PRED.presence.json when it exists); "
                             "makes the + EV presence row exact")
    parser.add_argument("--mv-threshold", type=float, default=0.5)
    parser.add_argument("--cache-dir", type=Path, default=Path("data/model-cache"))
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from verifiers.errors import VerifierModelError
    from verifiers.model import load_verifier

    try:
        verifier = load_verifier(args.verifier, cache_dir=args.cache_dir)
        result = compare(args.gt, args.pred, args.images, verifier, mv_threshold=args.mv_threshold,
                         presence_path=args.presence)
    except (OSError, ValueError, VerifierModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'system':<22}{'cgF1':>8}{'IL_MCC':>8}{'pmF1':>8}")
    labels = {"sam3": "SAM 3", "ev_presence": "+ EV presence", "ev_presence_mv": "+ MV removing rejected"}
    for name, row in result["results"].items():
        print(f"{labels[name]:<22}{100 * row['cgF1']:>8.1f}{row['IL_MCC']:>8.2f}{100 * row['positive_micro_F1']:>8.1f}")
    print(f"(EV presence mode: {result['presence_mode']}; MV removed {result['mv_removed']} masks; "
          f"verifier {result['verifier']})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
