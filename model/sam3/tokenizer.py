"""A small offline CLIP BPE tokenizer whose merges turn every word of the synthetic world into one token.

The vocabulary is byte-level (GPT-2 byte-to-unicode table): the 256 byte symbols, the same with the
end-of-word marker ``</w>``, one token per suffix of every known word, and the two CLIP special tokens.
Merges build each word from its end (``"l e</w>"``, ``"c le</w>"``, ...): a merge's right side always ends
in ``</w>``, so only the last pair of a word can ever merge and merges of different words never interfere.
Unknown text falls back to byte tokens.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from transformers import CLIPTokenizer

from model.synthetic import DOMAINS, phrase_vocabulary

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
EOW = "</w>"
MAX_TEXT_TOKENS = 32  # SAM 3's text context length, including BOS and EOS
# "visual" is SAM 3's text when only exemplar boxes are given (docs/data-engine.md §10).
EXTRA_WORDS = ("visual",)


@lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character table (what ByteLevel pre-tokenizes to)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def known_words() -> list[str]:
    """Every word of every phrase the synthetic world can produce, plus EXTRA_WORDS (sorted)."""
    words = set(EXTRA_WORDS)
    for domain in DOMAINS:
        for phrase in phrase_vocabulary(domain):
            words.update(phrase.split())
    return sorted(words)


def vocab_and_merges(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level vocab (token -> id) and the ordered merge list for ``words`` (lower-case ASCII)."""
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + EOW for s in symbols]
    merges: list[tuple[str, str]] = []
    seen = set(tokens)
    for word in words:
        if not word.isascii() or not word.islower():
            raise ValueError(f"word {word!r} must be lower-case ASCII")
        for start in range(len(word) - 2, -1, -1):
            left, right = word[start], word[start + 1 :] + EOW
            merged = left + right
            if merged not in seen:
                seen.add(merged)
                tokens.append(merged)
                merges.append((left, right))
    tokens += [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}, merges


def write_tokenizer_files(folder: str | Path, words: list[str] | None = None) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` into ``folder`` (created) and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = vocab_and_merges(known_words() if words is None else words)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return folder


def build_tokenizer(folder: str | Path, words: list[str] | None = None) -> CLIPTokenizer:
    """Write the files into ``folder`` and load them as a CLIPTokenizer (max length 32)."""
    write_tokenizer_files(folder, words)
    # transformers 5 ignores vocab_file=/merges_file= kwargs; from_pretrained(folder) reads both files.
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=MAX_TEXT_TOKENS, local_files_only=True)
