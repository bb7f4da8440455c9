"""Classifier accuracy per labelled set: top-1 department, emergency recall, false emergencies.

    .venv/bin/python bench/accuracy.py

The bar (issue 2): ≥ 95 % top-1, every emergency, no emergency for an ordinary request. The
hold-out sets were written after tuning rounds; their first scores are in tests/test_classify_accuracy.py.
"""
from __future__ import annotations

import json
from pathlib import Path

from ivr.routing.classify import Classifier
from ivr.routing.load import load_rules

ROOT = Path(__file__).resolve().parent.parent
SETS = {
    "dev_en": (ROOT / "tests" / "data" / "dev_utterances_en.jsonl", "en"),
    "ours_en": (ROOT / "tests" / "data" / "utterances_en.jsonl", "en"),
    "ours_es": (ROOT / "tests" / "data" / "utterances_es.jsonl", "es"),
    "holdout_en": (ROOT / "tests" / "data" / "utterances_holdout_en.jsonl", "en"),
    "holdout2_en": (ROOT / "tests" / "data" / "utterances_holdout2_en.jsonl", "en"),
    "holdout_es": (ROOT / "tests" / "data" / "utterances_holdout_es.jsonl", "es"),
    # Recogniser-style text (issue 9 item 7); tests/data/first_measured.md logs their first figures.
    "asr_dev_en": (ROOT / "tests" / "data" / "utterances_asr_dev_en.jsonl", "en"),
    "asr_en": (ROOT / "tests" / "data" / "utterances_asr_en.jsonl", "en"),
    "asr_es": (ROOT / "tests" / "data" / "utterances_asr_es.jsonl", "es"),
    "asr_holdout_en": (ROOT / "tests" / "data" / "utterances_asr_holdout_en.jsonl", "en"),
}
# A project checkout may have more labelled sets beside it (../shared/city); they are measured too
# when present, but nothing needs them.
_SHARED = ROOT.parent / "shared" / "city"
_OURS = {path.read_bytes() for path, _ in SETS.values() if path.exists()}
for _path in sorted(_SHARED.glob("*_utterances_*.jsonl")) if _SHARED.is_dir() else []:
    if _path.read_bytes() not in _OURS:
        SETS[f"{_path.stem} (../shared)"] = (_path, "es" if _path.stem.endswith("_es") else "en")


def main() -> None:
    classifier = Classifier(load_rules(ROOT / "routing_rules.yaml"))
    for name, (path, language) in SETS.items():
        cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        readings = [(case, classifier.classify(case["text"], case.get("lang", language))) for case in cases]
        ordinary = [(case, r) for case, r in readings if "department" in case]
        emergencies = [r for case, r in readings if case.get("action") == "emergency"]
        right = sum(1 for case, r in ordinary if not r.emergency and r.top and r.top.department == case["department"])
        false_alarms = sum(1 for _, r in ordinary if r.emergency)
        recalled = sum(1 for r in emergencies if r.emergency)
        print(f"{name:16s} top-1 {right}/{len(ordinary)} = {right / len(ordinary):6.1%}   "
              f"emergencies {recalled}/{len(emergencies)}   false emergencies {false_alarms}")


if __name__ == "__main__":
    main()
