"""``tunelab recommend``: which methods fit a memory and time budget, at what batch size, in what
order, and one clear line when nothing does or a budget cannot be read."""

from __future__ import annotations

import pytest
from helpers import tunelab

from tunelab.errors import TunelabError
from tunelab.estimation.memory import parse_bytes
from tunelab.estimation.recommendation import PRIOR, parse_duration, recommend
from tunelab.spec import load_spec


def test_sizes_and_durations_read_as_people_write_them():
    assert parse_bytes("24GB") == 24 * 10**9 and parse_bytes("24 GiB") == 24 * 2**30
    assert parse_bytes("512mib") == 512 * 2**20 and parse_bytes("1.5TB") == 1_500_000_000_000
    assert parse_duration("30m") == 1800 and parse_duration("1h30m") == 5400 and parse_duration("90s") == 90
    for text in ("24", "24 gigs", "lots"):
        with pytest.raises(TunelabError, match="cannot read --device-memory"):
            parse_bytes(text)


def _by_method(spec, memory: int, seconds: float | None = None) -> tuple[dict, list[str]]:
    options = recommend(spec, memory, seconds, "cpu", examples=1500)
    return {option.method: option for option in options}, [option.method for option in options]


def test_what_fits_is_in_with_its_batch_and_what_does_not_says_what_it_needs():
    spec = load_spec()  # the default: MiniLM on 1,500 IMDB reviews, batch 16 × 128 tokens
    options, order = _by_method(spec, parse_bytes("1.1GB"))
    head, full, freeze = options["head"], options["full"], options["freeze"]
    assert head.fits and head.setup.batch_size == 16 and not head.setup.gradient_checkpointing
    assert "fits at batch 16" in head.why and "steps in about" in head.why
    # full: 1.5 GB at batch 16; checkpointing and smaller batches bring it under 1.1 GB
    assert full.fits and (full.setup.gradient_checkpointing or full.setup.batch_size < 16)
    assert full.estimate.memory.total <= 1.1e9 and freeze.fits
    fitting = [name for name in order if options[name].fits]
    assert order[:len(fitting)] == fitting  # what fits comes first
    prior = PRIOR["classification"]
    assert fitting == sorted(fitting, key=prior.index) and {"full", "lora", "head"} <= set(fitting)  # by the prior
    assert options["qlora"].why.startswith("cannot train this model: qlora loads the model in 4 bits")


def test_a_time_budget_leaves_out_what_trains_too_long():
    spec = load_spec()
    options, _ = _by_method(spec, parse_bytes("8GB"))
    head, full = options["head"].seconds, options["full"].seconds
    assert head < full
    budget = (head + full) / 2
    timed, _ = _by_method(spec, parse_bytes("8GB"), budget)
    assert timed["head"].fits and not timed["full"].fits
    assert "but its training takes about" in timed["full"].why


@pytest.mark.parametrize(("args", "expected"), [
    (["--device-memory", "100MB"], "nothing fits in 0.10 GB: the smallest option, head at batch 1"),
    (["--device-memory", "8GB", "--time-budget", "1s"], "nothing trains within 1 s: the fastest option that fits"),
    (["--device-memory", "24 gigs"], "cannot read --device-memory '24 gigs' as a size"),
    (["--device-memory", "8GB", "--time-budget", "soon"], "cannot read --time-budget 'soon' as a duration"),
])
def test_a_budget_nothing_fits_or_that_cannot_be_read_gets_one_line_and_exit_2(args, expected):
    out = tunelab("recommend", *args)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
    assert expected in out.stderr


def test_recommend_prints_each_method_in_or_out_with_why():
    out = tunelab("recommend", "--device-memory", "1GB", "--time-budget", "2h")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert " yes " in lines["head"] and "fits at batch" in lines["head"]
    assert " no " in lines["prompt-tuning"] or " yes " in lines["prompt-tuning"]
    assert "prior: #" in lines["full"]
