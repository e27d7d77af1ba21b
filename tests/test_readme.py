"""The README's newcomer path works without ../shared (the project's developer folder): every mention of it is
marked optional, and the synthetic punks it points a newcomer at are where `bespoke demo` leaves them."""

from __future__ import annotations

import re

from locations import REPO

from bespoke.demo.demo import DATASET_NAME, DATASET_SIZE, DEFAULT_OUT

README = (REPO / "README.md").read_text(encoding="utf-8")


def _paragraphs() -> list[str]:
    return [p for p in re.split(r"\n\s*\n", README) if p.strip()]


def test_every_mention_of_shared_is_optional():
    mentions = [p for p in _paragraphs() if "../shared" in p]
    assert mentions
    for paragraph in mentions:
        assert "Optional" in paragraph or "optional" in paragraph, paragraph


def test_the_newcomer_dataset_is_the_demo_s():
    demo_dataset = f"{DEFAULT_OUT}/datasets/{DATASET_NAME}"
    assert f"`bespoke demo`\nleaves {DATASET_SIZE} synthetic ones in `{demo_dataset}/`" in README
    assert f"bespoke prepare\n{demo_dataset} -r 512" in README.replace("`bespoke prepare\n", "bespoke prepare\n")
