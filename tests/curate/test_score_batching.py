"""Length-sorted batching: plan invariants, padding accounting, and score invariance with a
tiny random reward model and a tiny causal LM (sorted vs unsorted, batch 1 vs 32)."""

from __future__ import annotations

import random

import pytest

from thresher.curate.score.batching import make_batches, padding_stats, run_batched


def _lengths(n=200, seed=0):
    rng = random.Random(seed)
    return [max(1, int(rng.lognormvariate(4.5, 0.8))) for _ in range(n)]


def test_batches_cover_every_row_once_and_respect_limits():
    lengths = _lengths()
    for sort in (True, False):
        batches = make_batches(lengths, 16, max_batch_tokens=4000, sort=sort)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(len(lengths)))
        for b in batches:
            assert len(b) <= 16
            if len(b) > 1:
                assert max(lengths[i] for i in b) * len(b) <= 4000


def test_unsorted_keeps_input_order_and_sorted_is_descending():
    lengths = [5, 50, 7, 30]
    assert make_batches(lengths, 2, sort=False) == [[0, 1], [2, 3]]
    assert make_batches(lengths, 2, sort=True) == [[1, 3], [2, 0]]


def test_over_budget_row_gets_its_own_batch():
    batches = make_batches([10, 1000, 10], 8, max_batch_tokens=100, sort=False)
    assert batches == [[0], [1], [2]]


def test_sorting_cuts_padding():
    lengths = _lengths(2000)
    unsorted = padding_stats(lengths, make_batches(lengths, 32, sort=False))
    sorted_ = padding_stats(lengths, make_batches(lengths, 32, sort=True))
    assert unsorted.real_tokens == sorted_.real_tokens == sum(lengths)
    assert sorted_.padding_fraction < 0.1
    assert unsorted.padding_fraction > 0.3
    assert padding_stats([3, 3], [[0, 1]]).padding_fraction == 0.0
    assert padding_stats([1, 3], [[0, 1]]).padding_fraction == pytest.approx(1 / 3)


def test_run_batched_returns_input_order():
    items = ["a" * n for n in (3, 9, 1, 4)]
    seen = []
    out = run_batched(items, [len(x) for x in items], lambda b: [len(x) for x in b],
                      batch_size=2, on_batch=lambda idx, res: seen.append(idx))
    assert out == [3, 9, 1, 4]
    assert seen == [[1, 3], [0, 2]]


def _convs(n=40, seed=1):
    """Conversations of very different lengths from real prose."""
    from pydoc_data import topics

    words = " ".join(list(topics.topics.values())[:5]).split()
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a = rng.randrange(0, len(words) - 200)
        q = " ".join(words[a : a + rng.randint(2, 20)])
        r = " ".join(words[a + 20 : a + 20 + rng.choice([1, 3, 10, 40, 120])])
        out.append([{"role": "user", "content": q}, {"role": "assistant", "content": r}])
    return out


def _check_invariant(make, convs):
    base = [r.score for r in make(batch_size=1, sort=False).score(convs)]
    assert all(isinstance(s, float) for s in base)
    assert len({round(s, 6) for s in base}) > len(base) // 2  # real, varied scores
    for bs, sort in ((32, True), (32, False), (7, True)):
        got = [r.score for r in make(batch_size=bs, sort=sort).score(convs)]
        assert max(abs(a - b) for a, b in zip(base, got)) < 1e-5, (bs, sort)


def test_reward_scores_do_not_depend_on_batching(tiny_reward_dir):
    from thresher.curate.score.reward import RewardScorer

    def make(batch_size, sort):
        return RewardScorer(str(tiny_reward_dir), batch_size=batch_size, sort=sort,
                            device="cpu", dtype="float32")

    _check_invariant(make, _convs(24))


def test_loglik_scores_do_not_depend_on_batching(tiny_lm_dir):
    from thresher.curate.score.loglik import LoglikScorer

    def make(batch_size, sort):
        return LoglikScorer(str(tiny_lm_dir), batch_size=batch_size, sort=sort,
                            device="cpu", dtype="float32")

    convs = _convs(16)
    _check_invariant(make, convs)
    # mean log-probabilities: negative, and near -log(vocab) = -6.2 for a random model
    s = make(8, True).score(convs)
    assert all(-9 < r.score < -3 for r in s)
