"""recdash.evaluation.significance against scipy, exact enumeration, hand-computed Holm and known-answer data."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from scipy import stats

from recdash.evaluation.significance import (
    Comparison,
    Method,
    align_users,
    best_vs_runner_up,
    bootstrap_interval,
    bootstrap_means,
    bootstrap_weights,
    compare_to_reference,
    holm,
    paired_t_test,
    randomization_test,
    seed_noise_vs_user_sampling,
    summary,
    within_noise_of_best,
)


def recall_like(rng: np.random.Generator, n_users: int, lifts: list[float], k: int = 10) -> np.ndarray:
    """recall@k-like per-user values of several runs on the same users: (n_users, len(lifts)).

    Each user has 1 + Poisson(5) held-out items and an ease drawn from Beta(0.6, 4) shared by every run (so runs are
    correlated across users, as real runs are); run j hits each of the k slots with probability ease * (1 + lift_j),
    from slot draws that are 70% shared between runs. Values lie in [0, 1] and most users have 0.
    """
    truth = 1 + rng.poisson(5, n_users)
    ease = rng.beta(0.6, 4.0, n_users)
    shared = rng.random((n_users, k))
    columns = []
    for lift in lifts:
        draws = np.where(rng.random((n_users, k)) < 0.7, shared, rng.random((n_users, k)))
        hits = (draws < np.clip(ease * (1 + lift), 0, 1)[:, None]).sum(axis=1)
        columns.append(np.minimum(hits, truth) / truth)
    return np.column_stack(columns)


# --- paired t-test ------------------------------------------------------------------------------------------------


def test_t_test_equals_scipy_ttest_rel_on_recall_like_vectors() -> None:
    rng = np.random.default_rng(7)
    runs = recall_like(rng, 943, [0.0, 0.01, 0.05, 0.15, -0.1])
    assert 0.3 < np.mean(runs == 0) < 0.9 and runs.min() >= 0 and runs.max() <= 1  # the data are what they claim
    reference, candidates = runs[:, 0], runs[:, 1:]
    t, p = paired_t_test(candidates - reference[:, None])
    for j in range(candidates.shape[1]):
        expected = stats.ttest_rel(candidates[:, j], reference)
        assert t[j] == pytest.approx(expected.statistic, rel=1e-12, abs=0)
        assert p[j] == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)
    assert p.min() < 1e-6 and p.max() > 0.01  # clear and unclear effects were both checked


def test_t_test_zero_variance_differences() -> None:
    values = np.arange(40) % 5 / 4  # multiples of 1/4: adding 0.25 below is exact in floating point
    t, p = paired_t_test(np.column_stack([values - values, (values + 0.25) - values, (values - 0.25) - values]))
    assert (t[0], p[0]) == (0.0, 1.0)  # identical runs: nothing differs, scipy's NaN is replaced by "no evidence"
    assert (t[1], p[1]) == (np.inf, 0.0)  # the same gain on every user: as scipy.stats.ttest_rel
    assert (t[2], p[2]) == (-np.inf, 0.0)


# --- randomization test -------------------------------------------------------------------------------------------


def exact_sign_flip_p(d: np.ndarray) -> float:
    """Two-sided p-value of the sign-flip test by enumerating all 2**n sign vectors (tiny n only)."""
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    null = np.abs(signs @ d)
    return float(np.mean(null >= abs(d.sum()) - 1e-12))


def test_randomization_test_agrees_with_exact_enumeration() -> None:
    # Tolerance: the Monte-Carlo p with R sign flips has standard error sqrt(p (1 - p) / R); 4 of them (two-sided
    # chance of a larger deviation ~6e-5 per vector) plus 1 / (R + 1) for the +1 correction's bias.
    permutations = 10_000
    vectors = np.array(
        [
            [0.3, 0.1, 0.2, -0.1, 0.0, 0.4, 0.1, -0.2, 0.3, 0.0, 0.2, 0.1],  # continuous-ish
            [0.1, 0.1, 0.1, -0.1, 0.1, 0.0, 0.0, 0.1, -0.1, 0.1, 0.0, 0.1],  # heavy ties, like recall gains
            [0.5, -0.2, 0.1, 0.1, -0.3, 0.2, 0.0, 0.4, -0.1, 0.2, 0.1, -0.2],  # weak effect
        ]
    ).T
    p = randomization_test(vectors, permutations=permutations, seed=3)
    for j in range(vectors.shape[1]):
        exact = exact_sign_flip_p(vectors[:, j])
        assert 0.005 < exact < 0.9  # a p-value where Monte-Carlo error is visible, not a trivial 0 or 1
        tolerance = 4 * np.sqrt(exact * (1 - exact) / permutations) + 1 / (permutations + 1)
        assert abs(p[j] - exact) <= tolerance, (j, p[j], exact)


def test_randomization_test_agrees_with_scipy_permutation_test() -> None:
    # scipy's permutation_test with permutation_type="samples" swaps each user's two values, i.e. flips the sign of
    # that user's difference: an independent implementation of the same test. Both p-values are Monte-Carlo
    # estimates (R = 10,000 and 9,999), so the tolerance is 4 standard errors of their difference,
    # 4 * sqrt(p (1 - p) (1 / R1 + 1 / R2)), plus 2 / R for the two +1 corrections.
    rng = np.random.default_rng(11)
    runs = recall_like(rng, 300, [0.0, 0.04, 0.08, -0.06])
    reference, candidates = runs[:, 0], runs[:, 1:]
    ours = randomization_test(candidates - reference[:, None], permutations=10_000, seed=5)
    for j in range(candidates.shape[1]):
        theirs = stats.permutation_test(
            (candidates[:, j], reference),
            lambda x, y, axis: np.mean(x - y, axis=axis),
            permutation_type="samples",
            vectorized=True,
            n_resamples=9_999,
            alternative="two-sided",
            rng=100 + j,
        ).pvalue
        assert 0.005 < theirs < 0.9, theirs  # a p-value where Monte-Carlo error is visible
        tolerance = 4 * np.sqrt(theirs * (1 - theirs) * (1 / 10_000 + 1 / 9_999)) + 2 / 9_999
        assert abs(ours[j] - theirs) <= tolerance, (j, ours[j], theirs)


def test_randomization_test_p_bounds() -> None:
    d = np.full(30, 0.1)  # every user gains: only the observed signs (and none of the random ones, w.p. ~1) tie
    p = randomization_test(np.column_stack([d, np.zeros(30)]), permutations=999, seed=0)
    assert p[0] == 1 / 1000  # (count + 1) / (R + 1) with count = 0: never 0
    assert p[1] == 1.0  # identical runs: every flip ties the observed 0


# --- bootstrap ----------------------------------------------------------------------------------------------------


def test_bootstrap_weights_are_resamples_with_replacement() -> None:
    weights = bootstrap_weights(500, resamples=2000, seed=0)
    assert weights.shape == (2000, 500)
    assert np.all(weights.sum(axis=1) == 500)  # each resample draws n users
    assert np.all(weights == np.round(weights)) and weights.min() >= 0
    # with replacement: P(a user is not drawn) = (1 - 1/n)^n ~ e^-1
    assert np.mean(weights == 0) == pytest.approx(np.exp(-1), abs=0.005)


def test_bootstrap_spread_matches_the_standard_error_of_a_mean() -> None:
    # the bootstrap std of a mean estimates sd(d, ddof=0) / sqrt(n); with B = 2000 resamples its relative
    # Monte-Carlo error is about 1 / sqrt(2 B) = 1.6%, so 4 of those (6.4%) is the tolerance.
    rng = np.random.default_rng(2)
    runs = recall_like(rng, 943, [0.0, 0.1, 0.3])
    d = runs[:, 1:] - runs[:, [0]]
    spread = bootstrap_means(d).std(axis=0, ddof=1)
    analytic = d.std(axis=0) / np.sqrt(d.shape[0])
    np.testing.assert_allclose(spread, analytic, rtol=0.064)


def test_bootstrap_interval_covers_true_difference_at_nominal_rate() -> None:
    # 2000 simulated datasets of 500 users with a known mean difference delta. Each user has an ease p ~ Beta(0.6, 4)
    # and 10 slots with shared uniforms U: run A hits where U < p, run B where U < q = p + 0.03 (1 - p). So the
    # per-user difference is (#slots with p <= U < q) / 10, mostly 0 and right-skewed, with E = E[q - p] =
    # 0.03 * (1 - 0.6 / 4.6) exactly. Each dataset is one column, so one call bootstraps all 2000 (with the same
    # resample weights, which is fine: given the weights the datasets are independent).
    # Band: with N = 2000 the observed coverage has binomial standard error sqrt(0.95 * 0.05 / 2000) = 0.0049;
    # 4 of them gives 0.9305..0.9695 (false alarm ~6e-5 if the true coverage is 0.95). The percentile interval's
    # known undercoverage at n = 500 is O(1/n), well inside the band; a 90% interval, an unpaired bootstrap
    # (which ignores the shared ease and is much wider) or std instead of standard error all fall outside it.
    n_users, n_datasets, k = 500, 2000, 10
    rng = np.random.default_rng(2024)
    delta = 0.03 * (1 - 0.6 / 4.6)
    ease = rng.beta(0.6, 4.0, (n_users, n_datasets))
    uniforms = rng.random((k, n_users, n_datasets))
    boosted = ease + 0.03 * (1 - ease)
    d = ((uniforms >= ease) & (uniforms < boosted)).sum(axis=0) / k
    assert np.mean(d == 0) > 0.6  # zero-inflated, as per-user metric gains are

    for level, band in ((0.95, 4 * np.sqrt(0.95 * 0.05 / n_datasets)), (0.80, 4 * np.sqrt(0.80 * 0.20 / n_datasets))):
        low, high = bootstrap_interval(d, level=level)
        coverage = np.mean((low <= delta) & (delta <= high))
        assert abs(coverage - level) <= band, (level, coverage)


def test_bootstrap_is_seeded_and_the_same_for_a_run_alone_or_in_a_batch() -> None:
    rng = np.random.default_rng(5)
    runs = recall_like(rng, 400, [0.0, 0.05, 0.1, 0.2])
    d = runs[:, 1:] - runs[:, [0]]
    low, high = bootstrap_interval(d)
    again = bootstrap_interval(d)
    np.testing.assert_array_equal(low, again[0])
    np.testing.assert_array_equal(high, again[1])
    alone = bootstrap_interval(d[:, 1])
    assert (alone[0][0], alone[1][0]) == pytest.approx((low[1], high[1]), rel=1e-12)
    other_seed = bootstrap_interval(d, seed=1)
    assert not np.array_equal(low, other_seed[0])
    assert np.all(low < d.mean(axis=0)) and np.all(d.mean(axis=0) < high)


# --- Holm ---------------------------------------------------------------------------------------------------------


def test_holm_hand_computed_example() -> None:
    # statsmodels.stats.multitest.multipletests(p, method="holm") computes (not installed here, written out):
    #     order = argsort(p); raw = p[order] * arange(m, 0, -1); adj = maximum.accumulate(raw); adj[adj > 1] = 1
    #     and returns adj in the input order.
    # By hand for p = [0.01, 0.04, 0.03, 0.005] (m = 4): sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 =
    # 0.02, 0.03, 0.06, 0.04; running max 0.02, 0.03, 0.06, 0.06; back in input order 0.03, 0.06, 0.06, 0.02.
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    # capped at 1: [0.6, 0.7] -> 0.6 * 2 = 1.2 -> 1, then max(1, 0.7 * 1) = 1
    np.testing.assert_array_equal(holm([0.6, 0.7]), [1.0, 1.0])
    # ties keep equal adjusted values; one comparison is not adjusted
    np.testing.assert_allclose(holm([0.02, 0.02, 0.5]), [0.06, 0.06, 0.5], rtol=1e-12)
    assert holm([0.037])[0] == 0.037


def test_holm_is_monotone_and_at_least_the_raw_p() -> None:
    p = np.random.default_rng(0).random(50) ** 3
    adjusted = holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert np.all(adjusted >= p) and np.all(adjusted <= 1)
    with pytest.raises(ValueError):
        holm([0.1, np.nan])


# --- within noise of the best, best vs runner-up ------------------------------------------------------------------


def sweep_with_known_answer(rng: np.random.Generator, n_users: int = 600) -> np.ndarray:
    """Columns: 0 = base + 0.05 gain on 60% of users (the best), 1 = column 0 plus zero-mean noise of sd 1e-3 and
    a mean shift of -1e-6 (indistinguishable by construction: |t| ~ 0.02), 2 = base (0.03 worse on average:
    distinguishable), 3 = column 0 with an exactly mean-zero noise (indistinguishable)."""
    base = recall_like(rng, n_users, [0.0])[:, 0]
    best = base + 0.05 * (rng.random(n_users) < 0.6)
    noise = rng.normal(0, 1e-3, n_users)
    noise -= noise.mean()
    other = rng.normal(0, 1e-3, n_users)
    other -= other.mean()
    return np.column_stack([best, best + noise - 1e-6, base, best + other - 0.5e-6])


@pytest.mark.parametrize("test", ["t", "randomization"])
def test_within_noise_of_best_on_constructed_sweep(test: str) -> None:
    values = sweep_with_known_answer(np.random.default_rng(9))
    found = within_noise_of_best(values, method=Method(test=test))
    assert found.best == 0
    assert found.within_noise == (0, 3, 1)  # best first, then by mean: column 3 is shifted less than column 1
    assert set(found.comparisons) == {1, 2, 3}
    assert found.comparisons[2].beyond_noise() and found.comparisons[2].difference < 0
    assert all(c.n_comparisons == 3 for c in found.comparisons.values())  # Holm over the 3 others


def test_within_noise_counts_the_top_trials() -> None:
    # four trials that equal the best up to mean-zero noise and two clearly worse ones: "the top 4 are within noise"
    rng = np.random.default_rng(4)
    base = recall_like(rng, 800, [0.0])[:, 0] + 0.05 * (rng.random(800) < 0.6)
    columns = [base]
    for shift in (1e-6, 2e-6, 3e-6):
        noise = rng.normal(0, 1e-3, 800)
        columns.append(base + noise - noise.mean() - shift)
    columns += [base - 0.05 * (rng.random(800) < 0.5), base - 0.1 * (rng.random(800) < 0.5)]
    found = within_noise_of_best(np.column_stack(columns))
    assert found.within_noise == (0, 1, 2, 3)


def test_within_noise_lower_is_better_and_explicit_best() -> None:
    values = sweep_with_known_answer(np.random.default_rng(9))
    found = within_noise_of_best(-values, higher_is_better=False)
    assert found.best == 0 and found.within_noise == (0, 3, 1)
    chosen = within_noise_of_best(values, best=2)  # e.g. the trial chosen on validation
    assert chosen.within_noise == (2,)  # every other column is clearly better than column 2


def test_best_vs_runner_up() -> None:
    values = sweep_with_known_answer(np.random.default_rng(9))
    close = best_vs_runner_up(values[:, [0, 1, 2]])
    assert (close.best, close.runner_up) == (0, 1)
    assert not close.beyond_noise and close.text("trial 7") == "best, but within noise of trial 7"
    clear = best_vs_runner_up(values[:, [2, 0]])
    assert (clear.best, clear.runner_up) == (1, 0)
    assert clear.beyond_noise and clear.comparison.difference > 0 and clear.comparison.n_comparisons == 1
    assert clear.text("EASE") == "best, beyond noise of EASE"


# --- compare, summary ---------------------------------------------------------------------------------------------


def test_compare_to_reference_pieces_agree() -> None:
    rng = np.random.default_rng(8)
    runs = recall_like(rng, 943, [0.0, 0.0, 0.02, 0.1, 0.3, -0.2])
    reference, candidates = runs[:, 0], runs[:, 1:]
    found = compare_to_reference(reference, candidates)
    d = candidates - reference[:, None]
    p = paired_t_test(d)[1]
    low, high = bootstrap_interval(d)
    np.testing.assert_allclose([c.difference for c in found], d.mean(axis=0), rtol=1e-12)
    np.testing.assert_array_equal([c.p_value for c in found], p)
    np.testing.assert_array_equal([c.p_adjusted for c in found], holm(p))
    np.testing.assert_array_equal([c.low for c in found], low)
    np.testing.assert_array_equal([c.high for c in found], high)
    assert all(c.n_users == 943 and c.n_comparisons == 5 and "Holm over 5" in c.method for c in found)
    line = summary(found[3])
    assert re.fullmatch(
        r"\+0\.\d{4} \[0\.\d{4}, 0\.\d{4}\], p [<=] [\d.e-]+ \(paired t, Holm over 5\): better beyond noise", line
    )
    assert summary(found[4]).endswith("worse beyond noise")
    uncorrected = compare_to_reference(reference, candidates, correction="none")
    assert [c.p_adjusted for c in uncorrected] == [c.p_value for c in uncorrected]


def test_auto_test_uses_randomization_for_few_users() -> None:
    rng = np.random.default_rng(1)
    few = recall_like(rng, 60, [0.0, 0.1])
    many = recall_like(rng, 400, [0.0, 0.1])
    assert compare_to_reference(few[:, 0], few[:, 1], method=Method(test="auto"))[0].test == "paired randomization"
    assert compare_to_reference(many[:, 0], many[:, 1], method=Method(test="auto"))[0].test == "paired t"


def test_summary_text() -> None:
    c = Comparison(0.0123, 0.0051, 0.0194, p_value=0.0002, p_adjusted=0.001, n_users=943, method="", n_comparisons=5)
    assert summary(c) == "+0.0123 [0.0051, 0.0194], p = 0.001 (paired t, Holm over 5): better beyond noise"
    assert summary(c, higher_is_better=False).endswith("worse beyond noise")
    within = Comparison(-0.002, -0.006, 0.001, p_value=0.21, p_adjusted=0.21, n_users=943, method="")
    assert summary(within) == "-0.0020 [-0.0060, 0.0010], p = 0.21 (paired t): within noise"
    tiny = Comparison(0.05, 0.04, 0.06, p_value=1e-9, p_adjusted=3e-9, n_users=943, method="", n_comparisons=3)
    assert summary(tiny) == "+0.0500 [0.0400, 0.0600], p < 0.001 (paired t, Holm over 3): better beyond noise"


# --- seed noise vs user sampling ----------------------------------------------------------------------------------


def test_seed_noise_vs_user_sampling_known_parts() -> None:
    # each user's value = user effect + the seed's offset + a user x seed interaction whose every row and column
    # averages to 0 (double-centred). So the run means are mean(effect) + offsets: seed noise is exactly the spread
    # of the offsets; each user's average over seeds is effect + mean(offsets): user sampling is exactly the
    # standard error of the effects. The interaction (sd 0.05, much larger than the offsets) is what a single
    # user's values move by between seeds, which averages out in a run mean and must not be reported as seed noise.
    rng = np.random.default_rng(6)
    user_effect = rng.beta(0.6, 4.0, 943)
    offsets = np.array([-0.01, 0.0, 0.01, 0.004])
    interaction = rng.normal(0, 0.05, (943, 4))
    interaction += interaction.mean() - interaction.mean(axis=0) - interaction.mean(axis=1, keepdims=True)
    parts = seed_noise_vs_user_sampling(user_effect[:, None] + offsets[None, :] + interaction)
    assert parts.seed_noise_std == pytest.approx(np.std(offsets, ddof=1), rel=1e-9)
    assert parts.user_sampling_se == pytest.approx(stats.sem(user_effect), rel=1e-9)
    assert parts.mean == pytest.approx(user_effect.mean() + offsets.mean(), rel=1e-12)
    assert (parts.n_repeats, parts.n_users) == (4, 943)
    with pytest.raises(ValueError):
        seed_noise_vs_user_sampling(user_effect)  # one repeat: no seed noise to measure


# --- inputs -------------------------------------------------------------------------------------------------------


def test_align_users_pairs_values_by_user_id() -> None:
    ids, matrix = align_users(
        [np.array([30, 10, 20, 40]), np.array([20, 40, 10, 50]), np.array([10, 20, 40, 30])],
        [np.array([0.3, 0.1, 0.2, 0.4]), np.array([2.0, 4.0, 1.0, 5.0]), np.array([10.0, np.nan, 40.0, 30.0])],
    )
    # 30 and 50 are missing from a run, 20 is NaN in the third: only users 10 and 40 are in every run
    np.testing.assert_array_equal(ids, [10, 40])
    np.testing.assert_array_equal(matrix, [[0.1, 1.0, 10.0], [0.4, 4.0, 40.0]])
    with pytest.raises(ValueError, match="duplicate"):
        align_users([np.array([1, 1]), np.array([1, 2])], [np.array([0.1, 0.2]), np.array([0.1, 0.2])])


def test_non_finite_values_are_refused() -> None:
    d = np.array([0.1, np.nan, 0.2])
    for call in (paired_t_test, randomization_test, bootstrap_interval):
        with pytest.raises(ValueError, match="align_users"):
            call(d)


def test_the_bootstrap_in_blocks_is_the_bootstrap_in_one_piece() -> None:
    """Bounded memory at 138k users must not change a number: blocks of resamples draw the same users."""
    import recdash.evaluation.significance as significance

    # even and odd user counts, in blocks of 100, 98 and 2 resamples (the last block shorter each time)
    for n_users, resamples in ((20_000, 301), (20_001, 301), (2_000_001, 5)):
        assert significance._BOOTSTRAP_CELLS // n_users < resamples  # several blocks
        values = np.random.default_rng(4).random((n_users, 2))
        whole = bootstrap_weights(n_users, resamples, seed=2) @ values / n_users
        blocked = significance.bootstrap_means(values, resamples=resamples, seed=2)
        np.testing.assert_allclose(blocked, whole, rtol=1e-12, atol=0)  # same draws; BLAS may sum in another order
