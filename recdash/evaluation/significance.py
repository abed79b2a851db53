"""Paired significance for runs scored on the same test users: "is run B really better than run A?"

Why paired: every run of one data group is evaluated on the same test users, so two runs' per-user metric values
come in pairs. How hard a user is (few held-out items, an odd taste) moves both runs' values together; that shared
part cancels in the per-user differences, which is why a paired interval is much narrower than two runs' separate
error bars and why every function here works on per-user vectors, never on the logged means alone.

Inputs are per-user vectors: one float per evaluated test user, the same users in the same order for every run
(:func:`align_users` builds that from per-run user ids). Several runs are a matrix of shape ``(n_users, n_runs)``,
one column per run; a 1-D vector is one run. A difference is always *candidate - reference*, so a positive
difference means the candidate scores higher. Values must be finite: a NaN is a user the run did not evaluate, and
:func:`align_users` drops such users from every run rather than letting them bias one side.

Everything is vectorised over runs: one bootstrap weight matrix and one set of sign flips, drawn from a fixed seed,
are shared by all runs (the same resampled users for every run, so the comparisons are paired and consistent), and
each run's statistics come from one matrix product. Method and formulas: ``docs/metrics.md``, "Is the difference
real?".

Only numpy and ``scipy.special`` (the Student t distribution function that ``scipy.stats.ttest_rel`` itself uses)
are imported, so pages pay no ``scipy.stats`` import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

__all__ = [
    "Comparison",
    "Method",
    "NoiseSet",
    "RunnerUp",
    "SpreadParts",
    "align_users",
    "best_vs_runner_up",
    "bootstrap_interval",
    "bootstrap_means",
    "bootstrap_weights",
    "compare_to_reference",
    "holm",
    "paired_t_test",
    "randomization_test",
    "seed_noise_vs_user_sampling",
    "summary",
    "within_noise_of_best",
]

LEVEL = 0.95  # interval coverage
RESAMPLES = 2000  # bootstrap resamples of the users
PERMUTATIONS = 10_000  # random sign-flip vectors of the randomization test
SEED = 0  # fixed: the same inputs always give the same interval and p-value
ALPHA = 0.05  # a (corrected) p-value below this is "beyond noise"
SMALL_SAMPLE_USERS = 100  # test="auto" uses the randomization test below this many users (rule of thumb)

Test = Literal["t", "randomization", "auto"]
Correction = Literal["holm", "none"]

_TEST_LABELS = {"t": "paired t", "randomization": "paired randomization"}
_BOOTSTRAP_CELLS = 2_000_000  # weight-matrix cells per block of resamples: 16 MB at any number of users
_SIGN_FLIP_CELLS = 2_000_000  # sign-flip matrix cells drawn per block: bounded memory (16 MB) for any R and n


@dataclass(frozen=True)
class Method:
    """How every comparison is made: interval ``level`` from ``resamples`` bootstrap resamples of the users, the
    ``test`` ("t", "randomization" with ``permutations`` sign flips, or "auto": randomization below
    ``SMALL_SAMPLE_USERS`` users, e.g. an activity quartile of a small dataset, where the t-test's normal
    approximation of the mean is least trustworthy), all drawn from ``seed``."""

    level: float = LEVEL
    resamples: int = RESAMPLES
    seed: int = SEED
    test: Test = "t"
    permutations: int = PERMUTATIONS


@dataclass(frozen=True)
class Comparison:
    """One run against a reference on the same users, ready for a page to show.

    ``difference`` is mean(candidate - reference) over the users; ``low``/``high`` its percentile bootstrap
    interval at ``level`` (per comparison, not simultaneous); ``p_value`` the paired test's two-sided p-value and
    ``p_adjusted`` the same after the correction over ``n_comparisons`` comparisons (equal to ``p_value`` when
    uncorrected). The verdict "beyond noise" is ``p_adjusted < alpha``.
    """

    difference: float
    low: float
    high: float
    p_value: float
    p_adjusted: float
    n_users: int
    method: str
    test: str = _TEST_LABELS["t"]
    level: float = LEVEL
    n_comparisons: int = 1

    def beyond_noise(self, alpha: float = ALPHA) -> bool:
        """True when the (corrected) paired test rejects "no difference" at ``alpha``."""
        return self.p_adjusted < alpha


@dataclass(frozen=True)
class NoiseSet:
    """Runs statistically indistinguishable from the best one (see :func:`within_noise_of_best`).

    ``within_noise`` holds column indices, the best first, then the others by mean from best to worst;
    ``comparisons[j]`` is run j against the best (difference = run j - best), Holm-corrected over the others.
    """

    best: int
    within_noise: tuple[int, ...]
    comparisons: dict[int, Comparison] = field(default_factory=dict)
    alpha: float = ALPHA


@dataclass(frozen=True)
class RunnerUp:
    """The best run against the runner-up (difference = best - runner-up), for the ★ best's label."""

    best: int
    runner_up: int
    comparison: Comparison
    beyond_noise: bool

    def text(self, runner_up_name: str) -> str:
        """'best, beyond noise of X' or 'best, but within noise of X'."""
        return (
            f"best, beyond noise of {runner_up_name}"
            if self.beyond_noise
            else f"best, but within noise of {runner_up_name}"
        )


@dataclass(frozen=True)
class SpreadParts:
    """The two uncertainties of a repeated configuration (see :func:`seed_noise_vs_user_sampling`)."""

    mean: float  # the configuration's mean over users and repeats
    seed_noise_std: float  # std (ddof=1) across repeats of the run means, on the same users
    user_sampling_se: float  # standard error over users of the seed-averaged per-user values
    n_repeats: int
    n_users: int


def align_users(user_ids: Sequence[ArrayLike], values: Sequence[ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
    """Put several runs' per-user values on the same users, in the same order.

    Returns ``(ids, matrix)``: the users that every run evaluated with a finite value, sorted by id (so the order,
    and with it the seeded bootstrap, does not depend on the order a run listed its users), and the
    ``(n_users, n_runs)`` matrix of their values. A user missing from any run, or NaN in any run, is dropped from
    all runs: a paired comparison is only defined on users both sides have. Duplicate ids within a run are an error.
    """
    if len(user_ids) != len(values):
        raise ValueError(f"{len(user_ids)} id arrays but {len(values)} value arrays")
    if not user_ids:
        raise ValueError("no runs to align")
    runs: list[tuple[np.ndarray, np.ndarray]] = []
    for i, (ids_like, vals_like) in enumerate(zip(user_ids, values, strict=True)):
        ids = np.asarray(ids_like).ravel()
        vals = np.asarray(vals_like, dtype=np.float64).ravel()
        if ids.shape != vals.shape:
            raise ValueError(f"run {i}: {ids.size} user ids but {vals.size} values")
        order = np.argsort(ids, kind="stable")
        ids, vals = ids[order], vals[order]
        if ids.size > 1 and np.any(ids[1:] == ids[:-1]):
            raise ValueError(f"run {i}: duplicate user ids")
        finite = np.isfinite(vals)
        runs.append((ids[finite], vals[finite]))
    common = runs[0][0]
    for ids, _ in runs[1:]:
        common = np.intersect1d(common, ids, assume_unique=True)
    matrix = np.empty((common.size, len(runs)))
    for j, (ids, vals) in enumerate(runs):
        matrix[:, j] = vals[np.searchsorted(ids, common)]
    return common, matrix


def _columns(values: ArrayLike, name: str = "values") -> np.ndarray:
    """(n_users, n_runs) float64 view of a 1-D or 2-D input, checked finite and with at least 2 users."""
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 1-D (one run) or 2-D (users x runs), got {matrix.ndim}-D")
    if matrix.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 users, got {matrix.shape[0]}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} contains NaN or infinite values; align runs with align_users() first")
    return matrix


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_weights(n_users: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``(resamples, n_users)`` matrix: how often each user is drawn in each bootstrap resample.

    Row b counts the users of resample b, drawn n_users times with replacement (a multinomial draw, every row sums
    to n_users). It depends only on (n_users, resamples, seed), so every run compared on the same users is resampled
    identically: the bootstrap stays paired, and a run's interval is the same alone or among 100 runs.
    """
    if n_users < 1 or resamples < 1:
        raise ValueError(f"n_users and resamples must be >= 1, got {n_users} and {resamples}")
    return _weights(np.random.default_rng(seed), n_users, resamples)


def _weights(rng: np.random.Generator, n_users: int, rows: int) -> np.ndarray:
    """The next ``rows`` resamples' user counts from ``rng`` (drawn row after row: blocks of rows give the same
    counts as one draw of them all)."""
    drawn = rng.integers(0, n_users, size=(rows, n_users), dtype=np.int64)
    drawn += np.arange(rows, dtype=np.int64)[:, None] * n_users  # one bincount over all rows
    counts = np.bincount(drawn.ravel(), minlength=rows * n_users)
    return counts.reshape(rows, n_users).astype(np.float64)


def bootstrap_means(values: ArrayLike, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``(resamples, n_runs)`` bootstrap means of each column: weights @ values / n_users, the weights made a block
    of resamples at a time so memory stays bounded at any number of users (138k users x 2,000 resamples would be a
    2 GB weight matrix); the result is the one :func:`bootstrap_weights` gives in one piece."""
    matrix = _columns(values)
    n_users = matrix.shape[0]
    if n_users < 1 or resamples < 1:
        raise ValueError(f"n_users and resamples must be >= 1, got {n_users} and {resamples}")
    rng = np.random.default_rng(seed)
    # an even number of rows per block: numpy draws these small integers two per 64-bit word and drops a
    # leftover half at the end of a call, so only blocks with an even count of draws continue the same stream
    rows = max(2, _BOOTSTRAP_CELLS // n_users // 2 * 2)
    out = np.empty((resamples, matrix.shape[1]))
    for start in range(0, resamples, rows):
        block = min(rows, resamples - start)
        out[start : start + block] = _weights(rng, n_users, block) @ matrix / n_users
    return out


def bootstrap_interval(
    values: ArrayLike, *, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval over users of each column's mean: ``(low, high)``, one entry per column.

    Pass differences (candidate - reference per user) for the interval of a paired difference, or raw values for
    a run's own whiskers. The bounds are the (1 - level)/2 and (1 + level)/2 quantiles (numpy's default linear
    interpolation) of the ``resamples`` bootstrap means.
    """
    _check_level(level)
    means = bootstrap_means(values, resamples, seed)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=0)
    return low, high


def paired_t_test(differences: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Paired Student t-test of mean difference 0, per column: ``(t, two-sided p)``, as ``scipy.stats.ttest_rel``.

    t = mean(d) / (std(d, ddof=1) / sqrt(n)) with n - 1 degrees of freedom and p = 2 * stdtr(n - 1, -|t|), the same
    formula and the same scipy function ``ttest_rel(candidate, reference)`` uses. When every user's difference is
    the same the t statistic is undefined: all zero (identical runs) gives t = 0, p = 1 (scipy gives NaN; nothing
    differs, so there is no evidence of a difference), the same non-zero value gives t = +-inf, p = 0 (as scipy;
    with rounding t can instead be huge and finite, p still 0).
    """
    d = _columns(differences, "differences")
    n = d.shape[0]
    mean = d.mean(axis=0)
    centred = d - mean
    var = np.mean(centred * centred, axis=0) * (n / (n - 1))  # scipy's _var: biased moment * n / (n - ddof)
    denom = np.sqrt(var / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / denom
    t = np.where(np.all(d == 0.0, axis=0), 0.0, t)
    p = 2.0 * special.stdtr(n - 1, -np.abs(t))
    return t, p


def randomization_test(differences: ArrayLike, *, permutations: int = PERMUTATIONS, seed: int = SEED) -> np.ndarray:
    """Paired randomization (sign-flip) test of mean difference 0, per column: two-sided Monte-Carlo p-values.

    Under "no difference" each user's two values are exchangeable, so each user's difference is as likely to have
    the opposite sign. ``permutations`` random sign vectors (each user flipped with probability 1/2, one set drawn
    from ``seed`` and shared by all columns) give the null distribution of sum(d); the statistic is |sum(d)| (for
    sign flips equivalent to |mean| and to |t|, since sum(d^2) does not change). p = (count + 1) / (R + 1), count
    the flips with |sum| >= |observed sum| (within a 1e-10 * sum|d| float tolerance, so exact ties count): the +1
    counts the observed signs as one of the equally likely assignments, so p is never 0 and the test is valid
    (Phipson & Smyth 2010). No normality is assumed, which is why it is used for small samples.
    """
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    d = _columns(differences, "differences")
    n = d.shape[0]
    total = d.sum(axis=0)
    observed = np.abs(total)
    tolerance = 1e-10 * np.abs(d).sum(axis=0)
    count = np.zeros(d.shape[1], dtype=np.int64)
    rng = np.random.default_rng(seed)
    block = max(1, _SIGN_FLIP_CELLS // n)
    for start in range(0, permutations, block):
        rows = min(block, permutations - start)
        flipped = rng.integers(0, 2, size=(rows, n), dtype=np.int8).astype(np.float64)
        null = total - 2.0 * (flipped @ d)  # sum of the differences with the flipped users' signs reversed
        count += np.count_nonzero(np.abs(null) >= observed - tolerance, axis=0)
    return (count + 1.0) / (permutations + 1.0)


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm(-Bonferroni) adjusted p-values, in the input order: controls the chance of any false "beyond noise".

    With the m p-values sorted ascending, p_(i) becomes max_{j <= i} min(1, (m - j + 1) p_(j)): monotone in the
    raw p-values and capped at 1. Rejecting where the adjusted p < alpha is Holm's step-down procedure.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D, got {p.ndim}-D")
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p_values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.minimum(np.maximum.accumulate(p[order] * (m - np.arange(m))), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


def _resolve_test(test: Test, n_users: int) -> Literal["t", "randomization"]:
    if test == "auto":
        return "randomization" if n_users < SMALL_SAMPLE_USERS else "t"
    if test not in _TEST_LABELS:
        raise ValueError(f"test must be 't', 'randomization' or 'auto', got {test!r}")
    return test


def _compare(differences: np.ndarray, method: Method | None, correction: Correction) -> list[Comparison]:
    """Comparisons for every column of a (n_users, m) difference matrix, corrected over the m columns."""
    method = method or Method()
    level, resamples, seed, permutations = method.level, method.resamples, method.seed, method.permutations
    test = method.test
    if correction not in ("holm", "none"):
        raise ValueError(f"correction must be 'holm' or 'none', got {correction!r}")
    n, m = differences.shape
    chosen = _resolve_test(test, n)
    low, high = bootstrap_interval(differences, level=level, resamples=resamples, seed=seed)
    if chosen == "t":
        p = paired_t_test(differences)[1]
        test_text = "paired t-test"
    else:
        p = randomization_test(differences, permutations=permutations, seed=seed)
        test_text = f"paired randomization test ({permutations} sign flips, seed {seed})"
    corrected = correction == "holm" and m > 1
    p_adjusted = holm(p) if corrected else p
    n_comparisons = m if corrected else 1
    correction_text = f"Holm over {m} comparisons" if corrected else "no correction for multiple comparisons"
    bootstrap_text = f"{level:.0%} percentile bootstrap over {n} users ({resamples} resamples, seed {seed})"
    text = f"{test_text}; {bootstrap_text}; {correction_text}"
    mean = differences.mean(axis=0)
    return [
        Comparison(
            difference=float(mean[j]),
            low=float(low[j]),
            high=float(high[j]),
            p_value=float(p[j]),
            p_adjusted=float(p_adjusted[j]),
            n_users=n,
            method=text,
            test=_TEST_LABELS[chosen],
            level=level,
            n_comparisons=n_comparisons,
        )
        for j in range(m)
    ]


def compare_to_reference(
    reference: ArrayLike,
    runs: ArrayLike,
    *,
    method: Method | None = None,
    correction: Correction = "holm",
) -> list[Comparison]:
    """Each run (a column of ``runs``) against ``reference`` on the same users: difference, interval, p-values.

    The family for the Holm correction is the columns given, so leave the reference's own column out; ``method``
    (default :class:`Method`) says which interval and test.
    """
    ref = _columns(reference, "reference")
    if ref.shape[1] != 1:
        raise ValueError(f"reference must be one run, got {ref.shape[1]} columns")
    matrix = _columns(runs, "runs")
    if matrix.shape[0] != ref.shape[0]:
        raise ValueError(f"runs have {matrix.shape[0]} users but the reference has {ref.shape[0]}")
    return _compare(matrix - ref, method, correction)


def _best_index(means: np.ndarray, higher_is_better: bool) -> int:
    return int(np.argmax(means) if higher_is_better else np.argmin(means))


def within_noise_of_best(
    values: ArrayLike,
    *,
    best: int | None = None,
    higher_is_better: bool = True,
    alpha: float = ALPHA,
    method: Method | None = None,
) -> NoiseSet:
    """Which runs (columns, e.g. sweep trials) are statistically indistinguishable from the best one.

    Every other run is tested against the best (``best``, or the best mean on these users) with the paired test,
    Holm-corrected over the m - 1 comparisons; a run is within noise when its adjusted p >= ``alpha``. "Within
    noise" means these users do not show a difference, not that the runs are equal; the correction makes the set
    larger, never smaller, which is the safe side for not over-reading a winner. The set need not be the top-k by
    mean: a noisy lower run can be within noise while a steadier higher one is not.
    """
    matrix = _columns(values)
    m = matrix.shape[1]
    means = matrix.mean(axis=0)
    if best is None:
        best = _best_index(means, higher_is_better)
    if not 0 <= best < m:
        raise ValueError(f"best must be a column index in [0, {m}), got {best}")
    others = [j for j in range(m) if j != best]
    comparisons: dict[int, Comparison] = {}
    if others:
        found = _compare(matrix[:, others] - matrix[:, [best]], method, "holm")
        comparisons = dict(zip(others, found, strict=True))
    sign = -1.0 if higher_is_better else 1.0
    close = sorted((j for j in others if not comparisons[j].beyond_noise(alpha)), key=lambda j: (sign * means[j], j))
    return NoiseSet(best=best, within_noise=(best, *close), comparisons=comparisons, alpha=alpha)


def best_vs_runner_up(
    values: ArrayLike,
    *,
    higher_is_better: bool = True,
    alpha: float = ALPHA,
    method: Method | None = None,
) -> RunnerUp:
    """The best run by mean against the second best, one paired test (no correction: a single comparison)."""
    matrix = _columns(values)
    if matrix.shape[1] < 2:
        raise ValueError("best_vs_runner_up needs at least 2 runs")
    means = matrix.mean(axis=0)
    best = _best_index(means, higher_is_better)
    rest = np.delete(np.arange(matrix.shape[1]), best)
    runner_up = int(rest[_best_index(means[rest], higher_is_better)])
    (comparison,) = _compare(matrix[:, [best]] - matrix[:, [runner_up]], method, "none")
    return RunnerUp(best=best, runner_up=runner_up, comparison=comparison, beyond_noise=comparison.beyond_noise(alpha))


def seed_noise_vs_user_sampling(repeats: ArrayLike) -> SpreadParts:
    """Split a repeated configuration's uncertainty into seed noise and user sampling: two different questions.

    ``repeats`` is (n_users, r): the same configuration trained r times with different seeds, scored on the same
    users. Seed noise answers "how much does the score move if I retrain with another seed, on these same test
    users?": the standard deviation (ddof=1) of the r run means. User sampling answers "how much would the
    configuration's score move on another sample of test users from the same population?": the standard error of
    the mean over users of each user's value averaged over the repeats, std_u(mean_r x_ur, ddof=1) / sqrt(n_users).
    A small seed noise with a large user sampling error means reruns agree but the test set is too small to pin the
    level down; the reverse means the training is unstable.
    """
    matrix = _columns(repeats, "repeats")
    n, r = matrix.shape
    if r < 2:
        raise ValueError("seed noise needs at least 2 repeats")
    per_user = matrix.mean(axis=1)
    return SpreadParts(
        mean=float(per_user.mean()),
        seed_noise_std=float(matrix.mean(axis=0).std(ddof=1)),
        user_sampling_se=float(per_user.std(ddof=1) / np.sqrt(n)),
        n_repeats=r,
        n_users=n,
    )


def summary(comparison: Comparison, *, alpha: float = ALPHA, higher_is_better: bool = True, digits: int = 4) -> str:
    """One line for a page, e.g. "+0.0123 [0.0051, 0.0194], p = 0.001 (paired t, Holm over 5): better beyond noise".

    The p shown is the corrected one when a correction was applied (named in the parentheses); the verdict is
    "better"/"worse beyond noise" when it is below ``alpha``, else "within noise". The interval is per comparison
    and from another method, so near alpha it can disagree with the (corrected) test: the verdict follows the test.
    """
    c = comparison
    p = c.p_adjusted
    p_text = "p < 0.001" if p < 0.001 else f"p = {p:.3g}"
    label = c.test + (f", Holm over {c.n_comparisons}" if c.n_comparisons > 1 else "")
    if c.beyond_noise(alpha):
        verdict = "better beyond noise" if (c.difference > 0) == higher_is_better else "worse beyond noise"
    else:
        verdict = "within noise"
    return f"{c.difference:+.{digits}f} [{c.low:.{digits}f}, {c.high:.{digits}f}], {p_text} ({label}): {verdict}"
