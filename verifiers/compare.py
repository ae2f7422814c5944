"""SAM 3 alone versus SAM 3 with the AI verifiers on a gold set (docs/data-engine.md §3, ablation table d).

    python -m verifiers.compare --gt GOLD.json --pred PRED.json --images DIR --verifier URI [--json OUT.json]

PRED.json is SAM 3's predictions in the COCO results format (``python -m model.predict``), scored with the
SA-Co cgF1 evaluator (``model.eval``) three ways:

1. SAM 3 alone;
2. + EV presence: the verifier's presence, 1 − P(accept | zero boxes), replaces SAM 3's. Where a prediction
   carries SAM 3's own ``presence_score`` the replacement is exact (score / presence × EV presence); where it
   does not, EV presence gates the pair (all its predictions dropped when EV presence < 0.5) — the result's
   ``presence_mode`` says which was used;
3. + MV: additionally every kept mask that MV does not accept (P(accept) + P(accept as text) < --mv-threshold)
   is removed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

SCORE_THRESHOLD = 0.5


def _pairs(gold: dict) -> list[dict]:
    return list(gold.get("images") or [])


def apply_verifiers(verifier, gold: dict, predictions: list[dict], images_dir: str | Path, *,
                    mv_threshold: float = 0.5, batch_size: int = 32) -> dict:
    """The three prediction lists {"sam3", "ev_presence", "ev_presence_mv"} plus per-pair EV presence."""
    from verifiers.errors import VerifierInputError
    from verifiers.model import EVItem, MVItem, mv_accept_probability

    by_pair: dict = {}
    for prediction in predictions:
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

    exact = bool(predictions) and all("presence_score" in p for p in predictions)
    with_ev: list[dict] = []
    for pair in pairs:
        ev_presence = presence[pair["id"]]
        for prediction in by_pair.get(pair["id"], []):
            updated = dict(prediction)
            if exact:
                sam3_presence = max(float(prediction["presence_score"]), 1e-6)
                updated["score"] = min(1.0, float(prediction["score"]) / sam3_presence * ev_presence)
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


def compare(gt_paths: list[Path], pred_path: Path, images_dir: Path, verifier, *, mv_threshold: float = 0.5) -> dict:
    """cgF1 / IL_MCC / pmF1 for SAM 3 alone, + EV presence, + MV (see module docstring)."""
    from model.eval.cgf1 import evaluate

    gold = json.loads(Path(gt_paths[0]).read_text())
    predictions = json.loads(Path(pred_path).read_text())
    variants = apply_verifiers(verifier, gold, predictions, images_dir, mv_threshold=mv_threshold)
    rows = {}
    for name in ("sam3", "ev_presence", "ev_presence_mv"):
        metrics = evaluate(list(gt_paths), variants[name]).to_json()
        flat = metrics.get("metrics", metrics)
        rows[name] = {key: flat.get(key) for key in ("cgF1", "IL_MCC", "positive_micro_F1")}
    return {"evaluator": "model.eval.cgf1 (SA-Co cgF1)", "verifier": getattr(verifier, "version", None),
            "presence_mode": variants["presence_mode"], "mv_threshold": mv_threshold,
            "mv_removed": variants["mv_removed"], "results": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verifiers.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--gt", type=Path, action="extend", nargs="+", required=True)
    parser.add_argument("--pred", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--verifier", required=True, help="verifier checkpoint: folder, s3:// or preset:tiny")
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
        result = compare(args.gt, args.pred, args.images, verifier, mv_threshold=args.mv_threshold)
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
