"""Rewrite the README's spec reference table from the schema (the test in tests/test_cli.py checks it)."""

from pathlib import Path

from artlab_kohya.spec.reference import README_BEGIN, README_END, reference_markdown

readme = Path(__file__).resolve().parent.parent / "README.md"
text = readme.read_text(encoding="utf-8")
head, rest = text.split(README_BEGIN, 1)
_, tail = rest.split(README_END, 1)
readme.write_text(f"{head}{README_BEGIN}\n{reference_markdown()}{README_END}{tail}", encoding="utf-8")
print(f"updated {readme}")
