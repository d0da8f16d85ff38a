"""cliptok.py: CLIP BPE counts on a tiny hand-made tokenizer, the lookup of tokenizer folders, and (engine)
the counts of transformers' CLIPTokenizer on the real vocabulary."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from artlab_kohya.dataset.cliptok import ClipCounter, _pieces, estimate_tokens, find_tokenizer, load_counter

CAPTIONS = [
    "sks, a photo of a woman, smiling, looking at viewer, upper body",
    "1girl, solo, long hair, looking at viewer, smile, blue eyes, blonde hair, shirt, hair ornament, long sleeves",
    "masterpiece, best quality, (extremely detailed CG unity 8k wallpaper:1.2), it's a dog's life, they're here",
    "Café au lait, naïve façade — “quoted” text ‘single’ ｆｕｌｌｗｉｄｔｈ 日本語のキャプション ½ Ⅻ ²",
    "emoji 🎉🎉 test, dog_(animal), #hashtag @user 12345 3.14, ｶﾀｶﾅ",
    "   multiple    spaces\tand tabs  ",
    "",
    "<|endoftext|> and <|startoftext|>, don't, we'll, I'M HERE",
]


def write_merges(folder: Path, merges: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return folder


def test_bpe_merges_in_rank_order(tmp_path):
    counter = load_counter(write_merges(tmp_path / "tok", ["c a", "ca t</w>", "d o", "do g</w>"]))
    assert counter._bpe("cat</w>"[:-4]) == ["cat</w>"]
    assert counter.count("cat") == 1
    assert counter.count("dog cat") == 2
    assert counter.count("cats") == 3  # ca t s</w>: "ca" merges; "ca t" is not a merge, only "ca t</w>" is
    assert counter.count("CAT, cat") == 3  # lower-cased; the comma is a piece of its own
    assert counter.count("<|endoftext|>") == 1


def test_pre_tokenizer_follows_clips_pattern():
    assert _pieces("it's a dog's life") == ["it", "'s", "a", "dog", "'s", "life"]
    assert _pieces("8k, (cg:1.2)") == ["8", "k", ",", "(", "cg", ":", "1", ".", "2", ")"]
    assert _pieces(",'s") == [",'", "s"]  # a run of punctuation is greedy, as in the regex
    assert _pieces("naïve 日本 ½x") == ["naïve", "日本", "½", "x"]  # \p{L}+ and one \p{N} at a time
    assert _pieces("a—b") == ["a", "—", "b"]


def test_only_the_merges_clip_reads_are_used(tmp_path):
    merges = [f"x{i} y{i}" for i in range(49152 - 256 - 2 + 10)]
    counter = load_counter(write_merges(tmp_path / "tok", merges))
    assert len(counter.ranks) == 49152 - 256 - 2


def test_estimate_is_close_for_common_tags():
    assert estimate_tokens("1girl, solo, smile") == 6
    assert estimate_tokens("") == 0
    assert estimate_tokens("supercalifragilisticexpialidocious") > 1


def test_find_tokenizer_in_cache_layouts(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("ARTLAB_KOHYA_TOKENIZERS", raising=False)
    assert find_tokenizer(None) is None
    hub = write_merges(tmp_path / "hub/models--openai--clip-vit-large-patch14/snapshots/abc123", ["a b"])
    assert find_tokenizer(None) == hub
    ours = write_merges(tmp_path / "cache/tokenizers/openai_clip-vit-large-patch14", ["a b"])
    assert find_tokenizer(None) == ours
    sd2 = write_merges(tmp_path / "given/stabilityai_stable-diffusion-2", ["a b"])
    assert find_tokenizer(tmp_path / "given") == sd2  # an sd-scripts --tokenizer_cache_dir
    assert find_tokenizer(sd2) == sd2  # or the folder itself
    monkeypatch.setenv("ARTLAB_KOHYA_TOKENIZERS", str(tmp_path / "given"))  # run's tokenizer folder
    assert find_tokenizer(None) == sd2


@pytest.mark.engine
def test_counts_match_transformers_clip_tokenizer(engine, tmp_path):
    folder = Path(engine["ENGINE_TOKENIZERS"]) / "openai_clip-vit-large-patch14"
    captions = [*CAPTIONS, (tmp_path / "x").name, "word " * 120, ", ".join(f"tag{i}" for i in range(60))]
    script = (
        "import json, sys; from transformers import CLIPTokenizer\n"
        f"t = CLIPTokenizer.from_pretrained({str(folder)!r})\n"
        "caps = json.load(sys.stdin)\n"
        "print(json.dumps([len(t(c, add_special_tokens=False).input_ids) for c in caps]))\n"
    )
    out = subprocess.run(
        [engine["ENGINE_PYTHON"], "-c", script],
        input=json.dumps(captions),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"},
    ).stdout
    expected = json.loads(out.strip().splitlines()[-1])
    counter = load_counter(folder)
    assert isinstance(counter, ClipCounter)
    assert [counter.count(c) for c in captions] == expected
