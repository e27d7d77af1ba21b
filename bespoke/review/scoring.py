"""What every sample's terms are measured against, built once per `process` and sent to each worker.

The training set (`Training`: its 24 px images for novelty, its palette for the scoring candidate and
off_palette, its captions for the prior) comes from a run's prepared dataset, or from `--training FOLDER` for
any other folder; `build_scorer` turns it into what a worker needs (`Scorer`): the prior's silhouette and
colour bins (bespoke.pixels.prior.Reference) and the tag models of every prompt the samples carry
(bespoke.pixels.adherence). The prior takes about a second to build and each tag about a tenth: tags repeat
across prompts (a folder with a .txt prompt per image), so each distinct tag is learned once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from bespoke import progress
from bespoke.pixels.adherence import TagModel, tag_model
from bespoke.pixels.novelty import TrainingSet
from bespoke.pixels.palette import Palette
from bespoke.pixels.phrases import Phrase, phrases
from bespoke.pixels.prior import Reference, TrainingPrior
from bespoke.review.records import PromptTags, TagInfo


@dataclass(frozen=True)
class Training:
    """The training set as `process` uses it: `images` (24 px, novelty), `palette`, `captions` (one per image,
    "" for none: the prior's tags), `source` (the folder they came from)."""

    images: TrainingSet
    palette: Palette
    captions: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Scorer:
    """What a worker measures a candidate's terms with: the prior's Reference (None without a training set)
    and the tag models of each prompt, by its text."""

    reference: Reference | None = None
    prompts: Mapping[str, tuple[TagModel, ...]] = field(default_factory=dict)

    def tags(self, prompt: str | None) -> tuple[TagModel, ...]:
        """The tag models of `prompt` (none for a sample without a prompt)."""
        return self.prompts.get(prompt, ()) if prompt else ()


def _phrase_key(phrase: Phrase) -> tuple:
    return phrase.words, phrase.hexes, phrase.noun


def build_scorer(training: Training | None, prompts: Iterable[str | None]) -> Scorer:
    """The Scorer of a training set (None: terms that need one are not measured) for these prompts."""
    texts = sorted({p for p in prompts if p})
    if training is None or not len(training.images):
        return Scorer(None, {text: tuple(tag_model(None, p) for p in phrases(text)) for text in texts})
    with progress.task("learning the training set's tags", total=len(texts) + 1) as bar:
        images = training.images
        prior = TrainingPrior.build(images.names, list(images.pictures), training.captions)
        bar.advance()
        learned: dict[tuple, TagModel] = {}
        models: dict[str, tuple[TagModel, ...]] = {}
        for text in texts:
            tags = []
            for phrase in phrases(text):
                key = _phrase_key(phrase)
                if key not in learned:
                    learned[key] = tag_model(prior, phrase)
                tags.append(replace(learned[key], phrase=phrase))
            models[text] = tuple(tags)
            bar.advance()
    return Scorer(prior.reference, models)


def _measure(model: TagModel) -> str | None:
    parts = []
    if model.learned is not None:
        learned = model.learned
        parts.append(f"learned from the {learned.positives} training punks whose captions carry "
                     f"{' '.join(learned.words)!r} (AUC {learned.auc:.2f})")
    if model.region is not None:
        parts.append(f"the colour asked, looked for in the {model.region}")
    return "; ".join(parts) or None


def prompt_tags(scorer: Scorer) -> list[PromptTags]:
    """Each prompt's tags and how they are measured, as the report records them."""
    return [PromptTags(prompt=text, tags=[TagInfo(text=m.phrase.text, measure=_measure(m), why=m.why)
                                          for m in models])
            for text, models in sorted(scorer.prompts.items())]
