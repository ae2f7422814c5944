"""Synthetic Wikidata JSON dumps in the real format, sized like real entities (benchmarks, scale tests).

Every line is what a real dump line looks like: labels/descriptions in ~30 languages, English aliases,
~15 properties with references and qualifiers, sitelinks; a share of properties, lexemes, empty maps as
``[]``, deprecated statements and entities without an English label. Deterministic for a seed.
"""
from __future__ import annotations

import bz2
import gzip
import json
import random
from pathlib import Path

LANGS = ["en", "de", "fr", "es", "it", "nl", "pl", "ru", "ja", "zh", "pt", "sv", "uk", "ca", "cs", "fi", "hu", "ko",
         "ar", "fa", "he", "id", "ms", "no", "ro", "sr", "tr", "vi", "da", "eo"]
WORDS = ("cat dog house river mountain tree bird car stone glass red blue green small large old new city village "
         "church bridge road tower castle lake island forest flower fish horse cow sheep apple bread cup bowl "
         "chair table lamp door window book paper pen bottle box bag shoe hat coat ship boat train plane wheel "
         "engine machine tool hammer knife fork spoon plate").split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _ref(rng: random.Random) -> dict:
    return {"hash": f"{rng.getrandbits(64):016x}", "snaks": {"P248": [{
        "snaktype": "value", "property": "P248", "datatype": "wikibase-item",
        "datavalue": {"value": {"entity-type": "item", "numeric-id": 328, "id": "Q328"}, "type": "wikibase-entityid"}}],
        "P813": [{"snaktype": "value", "property": "P813", "datatype": "time", "datavalue": {"value": {
            "time": "+2024-01-01T00:00:00Z", "timezone": 0, "before": 0, "after": 0, "precision": 11,
            "calendarmodel": "http://www.wikidata.org/entity/Q1985727"}, "type": "time"}}]},
        "snaks-order": ["P248", "P813"]}


def _item_statement(rng: random.Random, prop: str, target: int, rank: str = "normal") -> dict:
    return {"mainsnak": {"snaktype": "value", "property": prop, "hash": f"{rng.getrandbits(40):010x}",
                         "datavalue": {"value": {"entity-type": "item", "numeric-id": target, "id": f"Q{target}"},
                                       "type": "wikibase-entityid"}, "datatype": "wikibase-item"},
            "type": "statement", "id": f"Q{target}${rng.getrandbits(64):016X}", "rank": rank,
            "references": [_ref(rng)]}


def _string_statement(rng: random.Random, prop: str) -> dict:
    return {"mainsnak": {"snaktype": "value", "property": prop, "datavalue": {"value": _text(rng, 3), "type": "string"},
                         "datatype": "string"}, "type": "statement", "id": f"X${rng.getrandbits(64):016X}",
            "rank": "normal", "qualifiers": {"P585": [{"snaktype": "value", "property": "P585", "datatype": "time",
                                                         "datavalue": {"value": {"time": "+2001-00-00T00:00:00Z",
                                                                                 "precision": 9}, "type": "time"}}]},
            "qualifiers-order": ["P585"], "references": [_ref(rng)]}


def entity(rng: random.Random, qid: int, parents: list[int]) -> dict:
    """One realistic item dict (``parents`` become P279 statements)."""
    n_lang = rng.randint(8, len(LANGS))
    langs = LANGS[:n_lang] if rng.random() > 0.05 else LANGS[1:n_lang]  # ~5% without an English label
    labels = {lang: {"language": lang, "value": _text(rng, rng.randint(1, 3))} for lang in langs}
    descriptions = {lang: {"language": lang, "value": _text(rng, rng.randint(3, 8))} for lang in langs[:n_lang // 2]}
    aliases = ({"en": [{"language": "en", "value": _text(rng, 2)} for _ in range(rng.randint(1, 3))]}
               if rng.random() < 0.5 else [])
    claims: dict = {}
    if parents:
        claims["P279"] = [_item_statement(rng, "P279", p) for p in parents]
        if rng.random() < 0.1:
            claims["P279"].append(_item_statement(rng, "P279", rng.randint(1, 10 ** 7), "deprecated"))
    if rng.random() < 0.3:
        claims["P31"] = [_item_statement(rng, "P31", rng.randint(1, 10 ** 6))]
    for k in range(rng.randint(8, 20)):
        prop = f"P{rng.randint(100, 9000)}"
        claims[prop] = [_string_statement(rng, prop) for _ in range(rng.randint(1, 2))]
    sitelinks = {f"{lang}wiki": {"site": f"{lang}wiki", "title": _text(rng, 2), "badges": []}
                 for lang in langs[:rng.randint(0, 12)]} or []
    return {"type": "item", "id": f"Q{qid}", "labels": labels, "descriptions": descriptions or [], "aliases": aliases,
            "claims": claims or [], "sitelinks": sitelinks, "lastrevid": rng.randint(1, 10 ** 9)}


def write_dump(path: Path, n_items: int, *, seed: int = 0, compress: str | None = None,
               templates: int = 256) -> Path:
    """Write ``n_items`` items (plus ~1% properties and lexemes) as a dump; ``compress`` is None, 'gz' or 'bz2'.

    Lines are drawn from ``templates`` realistic entities with fresh ids and parents (P279 to earlier items,
    ~10% with two parents), so writing is fast and the compression ratio stays realistic.
    """
    rng = random.Random(seed)
    one = [json.dumps(entity(rng, 999_999_990, [999_999_991]), ensure_ascii=False, separators=(",", ":"))
           for _ in range(templates)]
    two = [json.dumps(entity(rng, 999_999_990, [999_999_991, 999_999_992]), ensure_ascii=False,
                      separators=(",", ":")) for _ in range(templates // 4)]
    prop = '{"type":"property","id":"P%d","datatype":"string","labels":{"en":{"language":"en","value":"a property"}},' \
           '"descriptions":[],"aliases":[],"claims":[]}'
    lexeme = '{"type":"lexeme","id":"L%d","lemmas":{"en":{"language":"en","value":"cat"}},"claims":[],"forms":[],' \
             '"senses":[]}'
    opener = {None: open, "gz": lambda p, m: gzip.open(p, m, compresslevel=6), "bz2": bz2.open}[compress]
    with opener(path, "wt") as out:
        out.write("[\n")
        lines = []
        for i in range(1, n_items + 1):
            if i > 2 and rng.random() < 0.1:
                line = rng.choice(two).replace("999999992", str(rng.randint(1, i - 1)))
            else:
                line = rng.choice(one)
            line = line.replace("999999991", str(rng.randint(1, max(1, i - 1)))).replace("999999990", str(i))
            lines.append(line)
            if rng.random() < 0.01:
                lines.append(prop % i)
            if rng.random() < 0.01:
                lines.append(lexeme % i)
            if len(lines) >= 1000:
                out.write(",\n".join(lines) + ",\n")
                lines = []
        out.write(",\n".join(lines or ['{"type":"property","id":"P0","claims":[]}']) + "\n]\n")
    return path
