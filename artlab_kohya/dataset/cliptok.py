"""How many CLIP tokens a caption takes, counted the way sd-scripts' tokenizer counts them.

sd-scripts feeds captions through transformers' CLIPTokenizer and keeps `max_token_length` tokens (75 by
default) between the start and end tokens; the rest is silently cut. Counting needs only the BPE merges
(merges.txt): every byte-level piece is in the vocabulary, so the count is the number of BPE pieces. This
re-implements CLIPTokenizer's `_tokenize` (ftfy path: whitespace clean, lower case, the `\\p{L}+|\\p{N}|...`
pre-tokenizer, byte-to-unicode, BPE) in the stdlib, so artlab-kohya needs neither transformers nor torch.
Where no tokenizer folder is at hand, `estimate_tokens` gives a rough count and says so.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

from .. import settings

__all__ = ["ClipCounter", "estimate_tokens", "find_tokenizer", "load_counter"]

# CLIPTokenizer reads merges.txt lines 1 .. 49152 - 256 - 2 (the first line is a version header).
_MERGES_USED = 49152 - 256 - 2
# Folder names of sd-scripts' --tokenizer_cache_dir (hub id with "/" -> "_"); all share CLIP's BPE.
TOKENIZER_FOLDERS = (
    "openai_clip-vit-large-patch14",
    "stabilityai_stable-diffusion-2",
    "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k",
)
_HUB_REPO = "models--openai--clip-vit-large-patch14"
_SPECIAL = ("<|startoftext|>", "<|endoftext|>")
_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
# The same on lower-cased ASCII text, where \p{L} is [a-z] and \p{N} is [0-9]; the alternatives that start
# with a letter or digit come first (faster), which changes no match: the others start with "'" or "<".
_ASCII_PAT = re.compile(r"[a-z]+|[0-9]|'(?:s|t|re|ve|m|ll|d)|<\|startoftext\|>|<\|endoftext\|>|[^\sa-z0-9]+")
_SPACES = re.compile(r"\s+")
# What ftfy.fix_text changes in ordinary captions: typographic quotes, ligatures, full-width Latin.
_FTFY_TABLE = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
     "\u201f": '"', "\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
     "\u3000": " ", **{chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)}}
)  # fmt: skip


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable character map (the same table as GPT-2's)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


_BYTE_ENCODER = _bytes_to_unicode()


class ClipCounter:
    """Counts CLIP BPE tokens of captions; exact where the text needs no ftfy repair."""

    exact = True

    def __init__(self, merges: Iterable[tuple[str, str]], source: str) -> None:
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.source = source
        self._cache = _PieceCache(self._piece_tokens)

    def count(self, text: str) -> int:
        """Tokens of `text` without the start and end tokens (sd-scripts' window is 75 of these)."""
        return sum(map(self._cache.__getitem__, _pieces(_clean(text))))

    def _piece_tokens(self, piece: str) -> int:
        if piece in _SPECIAL:
            return 1
        return len(self._bpe("".join(_BYTE_ENCODER[b] for b in piece.encode())))

    def _bpe(self, token: str) -> list[str]:
        word = [*token[:-1], token[-1] + "</w>"]
        ranks = self.ranks
        while len(word) > 1:
            best, best_rank = None, None
            for pair in zip(word, word[1:], strict=False):
                rank = ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best, best_rank = pair, rank
            if best is None:
                break
            first, second = best
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        return word


class _PieceCache(dict[str, int]):
    """piece -> token count, computed on first sight; captions repeat their words a lot."""

    def __init__(self, compute: Callable[[str], int]) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, piece: str) -> int:
        n = self[piece] = self.compute(piece)
        return n


def _clean(text: str) -> str:
    """ftfy.fix_text (the parts that touch captions) + whitespace_clean + lower, as CLIPTokenizer does."""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text.translate(_FTFY_TABLE))
        if any("\uff61" <= c <= "\uff9f" for c in text):  # half-width katakana become full-width
            text = "".join(unicodedata.normalize("NFKC", c) if "\uff61" <= c <= "\uff9f" else c for c in text)
    return (_SPACES.sub(" ", text) if "  " in text or "\t" in text else text).strip().lower()


def _pieces(text: str) -> list[str]:
    """CLIPTokenizer's pre-tokenizer regex (\\p{L}+, one \\p{N}, runs of anything else, contractions)."""
    if text.isascii():
        return _ASCII_PAT.findall(text)
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        special = next((s for s in _SPECIAL if text.startswith(s, i)), None)
        if special:
            out.append(special)
            i += len(special)
            continue
        if c == "'":
            hit = next((s for s in _CONTRACTIONS if text.startswith(s, i)), None)
            if hit:
                out.append(hit)
                i += len(hit)
                continue
        kind = _kind(c)
        j = i + 1
        if kind == "L":
            while j < n and _kind(text[j]) == "L":
                j += 1
        elif kind == "O":
            while j < n and _kind(text[j]) == "O" and not text[j].isspace():
                j += 1
        out.append(text[i:j])
        i = j
    return out


@lru_cache(maxsize=4096)
def _kind(c: str) -> str:
    cat = unicodedata.category(c)
    return "L" if cat[0] == "L" else "N" if cat[0] == "N" else "O"


def load_counter(folder: str | os.PathLike[str]) -> ClipCounter:
    """A counter from a CLIP tokenizer folder (one holding merges.txt)."""
    merges_path = Path(folder) / "merges.txt"
    with open(merges_path, encoding="utf-8") as f:
        lines = f.read().strip().split("\n")[1 : _MERGES_USED + 1]
    merges = []
    for line in lines:
        parts = line.split()
        if len(parts) == 2:
            merges.append((parts[0], parts[1]))
    return ClipCounter(merges, str(Path(folder)))


def find_tokenizer(*candidates: str | os.PathLike[str] | None) -> Path | None:
    """The first CLIP tokenizer folder found, without any network access.

    Each candidate may be a tokenizer folder itself or an sd-scripts --tokenizer_cache_dir holding one;
    after them come the folder `run` uses ($ARTLAB_KOHYA_TOKENIZERS, else <cache>/tokenizers) and the
    Hugging Face hub cache.
    """
    roots: list[Path] = [Path(c).expanduser() for c in candidates if c]
    roots.append(settings.tokenizer_root())  # where `run` keeps them
    for root in roots:
        for folder in (root, *(root / name for name in TOKENIZER_FOLDERS)):
            if (folder / "merges.txt").is_file():
                return folder
    snapshots = settings.hf_hub_cache() / _HUB_REPO / "snapshots"
    if snapshots.is_dir():
        for snap in sorted(snapshots.iterdir()):
            if (snap / "merges.txt").is_file():
                return snap
    return None


def estimate_tokens(text: str) -> int:
    """A rough count without merges: CLIP's own pre-tokenizer, and long words split in ~4-character pieces.

    Common English words are one CLIP token; rare and long ones are several.
    """
    pieces = _pieces(_clean(text))
    return len(pieces) + sum((len(p) - 6) // 4 for p in pieces if len(p) > 9)
