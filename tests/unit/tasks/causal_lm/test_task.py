"""The causal-LM task's choice of which test examples to generate for: the sample every run draws."""

from __future__ import annotations

from datasets import Dataset

from tunelab.tasks.causal_lm.task import generation_sample


def test_the_generation_sample_is_the_seeded_shuffle_every_run_draws():
    """By index, the very examples ``Dataset.shuffle(seed=0)`` puts first, as runs generated for before
    they kept their answers: a run scored then and one scored now score the same examples."""
    rows = Dataset.from_dict({"reference": [f"answer {i}" for i in range(40)]})
    picked = generation_sample(len(rows), 7)
    assert rows.select(picked)["reference"] == rows.shuffle(seed=0).select(range(7))["reference"]
    assert len(set(picked)) == 7 and picked != list(range(7))  # not the shortest, which the sorted split puts first
    assert generation_sample(40, None) == generation_sample(40, 40) == list(range(40))
