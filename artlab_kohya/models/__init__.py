"""Base models and what comes with them: where a checkpoint comes from (hub.py, pinned), what it is
(checkpoint.py: header, architecture, pickle refusal), which bytes it was (hashing.py), its tokenizers
(tokenizers.py), and how big a LoRA on it will be (netsize.py). Works from headers, hashes and the
Hugging Face cache; never loads a tensor. May import: spec, settings, files, errors."""
