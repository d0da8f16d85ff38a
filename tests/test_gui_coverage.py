"""scripts/gui_coverage.py: every GUI setting is a first-class spec field or says why not, and
docs/gui_coverage.md (which the README links to) is what the script writes now."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from artlab_kohya.spec.gui import FIELDS, PASSED_ON

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gui_coverage", ROOT / "scripts" / "gui_coverage.py")
assert _spec is not None and _spec.loader is not None
coverage = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(coverage)
PRESETS = sorted(coverage.PRESETS.glob("*.json"))


def test_every_field_that_is_not_first_class_says_why():
    for field in FIELDS:
        assert field.first_class or field.reason, f"{field.name}: first-class, or give it a reason in spec/gui.py"
        if field.to.startswith(PASSED_ON):
            assert field.stays, f"{field.name}: passed on; say why it stays there (GuiField.stays)"


def test_every_preset_setting_is_first_class_or_listed_with_a_reason():
    now = coverage.schema_paths(ROOT)
    for preset in PRESETS:
        for name in coverage.settings(json.loads(preset.read_text(encoding="utf-8"))):
            assert coverage.first_class(name, now) or coverage.reason(name), f"{preset.stem}: {name}"


def test_the_document_is_current():
    text, missing = coverage.document(PRESETS)
    assert missing == []
    assert (ROOT / "docs" / "gui_coverage.md").read_text(encoding="utf-8") == text, f"run {coverage.COMMAND}"
    assert "docs/gui_coverage.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_a_setting_without_a_reason_fails_the_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    preset = tmp_path / "mine.json"
    preset.write_text(json.dumps({"additional_parameters": "--log_prefix=x --some_new_argument=3"}))
    assert coverage.main([str(preset)]) == 1
    out, err = capsys.readouterr()
    assert "no reason given for: --some_new_argument" in err
    assert "| `--some_new_argument` | 1 | `kohya.extra_args.some_new_argument` | **no reason given** |" in out
    assert "| mine | 2 | 1 (50%) |" in out  # --log_prefix is output.log_prefix
    assert coverage.main([str(PRESETS[0])]) == 0
