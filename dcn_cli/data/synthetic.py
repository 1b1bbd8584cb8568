"""Synthetic datasets with known feature crosses."""

from __future__ import annotations

import numpy as np

from dcn_cli.data.rowhash import hash01

MIXER_FEATURES = ("country", "bananas", "cookbooks")


def mixer(rows: int = 100_000, seed: int = 42) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The TensorFlow Recommenders tutorial's toy data, value for value.

    ``y = 0.1 country + 0.4 bananas + 0.7 cookbooks + 0.1 country*bananas
    + 3.1 bananas*cookbooks + 0.1 cookbooks^2``, the inputs drawn in this order
    from ``np.random.RandomState(seed)`` (the tutorial's ``get_mixer_data``).
    """
    rng = np.random.RandomState(seed)
    country = rng.randint(200, size=[rows, 1]) / 200.0
    bananas = rng.randint(24, size=[rows, 1]) / 24.0
    cookbooks = rng.randint(6, size=[rows, 1]) / 6.0
    y = 0.1 * country + 0.4 * bananas + 0.7 * cookbooks
    y += 0.1 * country * bananas + 3.1 * bananas * cookbooks + 0.1 * cookbooks * cookbooks
    columns = {"country": country[:, 0], "bananas": bananas[:, 0], "cookbooks": cookbooks[:, 0]}
    return columns, y[:, 0]


# f1 and f2 are the second-order polynomials of the DCN-V2 paper's synthetic study
# (arXiv 2008.13535, Table 1); f3 is a third-order one in the same style, not the
# paper's. Inputs are uniform in [-1, 1]. Terms are (coefficient, feature indices);
# x1 is index 0.
POLY_FUNCTIONS: dict[str, list[tuple[float, tuple[int, ...]]]] = {
    # f1 = x1^2 + x1 x2 + x3 x1 + x4 x1
    "f1": [(1.0, (0, 0)), (1.0, (0, 1)), (1.0, (2, 0)), (1.0, (3, 0))],
    # f2 = x1^2 + 0.1 x1 x2 + x2 x3 + 0.1 x3^2
    "f2": [(1.0, (0, 0)), (0.1, (0, 1)), (1.0, (1, 2)), (0.1, (2, 2))],
    # f3 = x1 x2 x3 + x1^2 + x2 x3 + x1 x3 x4: third order, needs two cross layers
    "f3": [(1.0, (0, 1, 2)), (1.0, (0, 0)), (1.0, (1, 2)), (1.0, (0, 2, 3))],
}


def random_polynomial(
    features: int, order: int, terms: int, seed: int
) -> list[tuple[float, tuple[int, ...]]]:
    """``terms`` distinct monomials of degree 2..``order`` with coefficients in ±[0.5, 1.5]."""
    rng = np.random.default_rng(seed)
    chosen: dict[tuple[int, ...], float] = {}
    while len(chosen) < terms:
        degree = int(rng.integers(2, order + 1))
        monomial = tuple(sorted(int(i) for i in rng.integers(0, features, size=degree)))
        if monomial not in chosen:
            chosen[monomial] = float(rng.choice([-1, 1]) * rng.uniform(0.5, 1.5))
    return [(coef, mono) for mono, coef in chosen.items()]


def poly(
    terms: list[tuple[float, tuple[int, ...]]],
    features: int,
    rows: int,
    seed: int,
    noise: float = 0.0,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(rows, features))
    y = np.zeros(rows)
    for coefficient, monomial in terms:
        y += coefficient * np.prod(x[:, list(monomial)], axis=1)
    if noise:
        y += rng.normal(0.0, noise, size=rows)
    return {f"x{i + 1}": x[:, i] for i in range(features)}, y


def describe_terms(terms: list[tuple[float, tuple[int, ...]]]) -> list[dict]:
    """Terms as schema.json records: feature names (x1-based) and the coefficient."""
    return [{"features": [f"x{i + 1}" for i in mono], "coefficient": coef} for coef, mono in terms]


CTR_NUMERICAL = [f"I{i}" for i in range(1, 14)]
CTR_CATEGORICAL = [f"C{i}" for i in range(1, 27)]
# The hidden logistic model's planted crosses: (feature a, feature b, weight).
TRUTH_COLUMN = "probability"  # each row's true click probability, in the truth side files
CTR_CROSSES = [("C1", "C2", 2.0), ("C3", "I1", 1.5), ("I2", "I3", 1.0)]
# With tags (``dcn generate ctr --with-tags``): a list-valued column of 0-4 tags out of
# TAG_VOCABULARY, whose signal (the mean effect of a row's tags) crosses I2 instead of I3.
TAGS = "tags"
TAG_VOCABULARY = 64
TAG_CROSSES = [("C1", "C2", 2.0), ("C3", "I1", 1.5), (TAGS, "I2", 2.0)]


def ctr_vocab_sizes(vocab_size: int) -> list[int]:
    """Vocabulary sizes of C1..C26, log-spaced from 4 to ``vocab_size``."""
    sizes = np.geomspace(4, max(vocab_size, 4), num=len(CTR_CATEGORICAL))
    return [int(round(s)) for s in sizes]


def _effect(column: int, ids: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random effect in [-1, 1) for each id of one column."""
    return 2.0 * hash01(ids.astype(np.uint64) * np.uint64(64) + np.uint64(column), 7) - 1.0


def _tags(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's tags, joined by |, and their mean effect (0 for no tags)."""
    counts = rng.integers(0, 5, size=n)
    ids = (rng.zipf(1.5, size=(n, 4)) - 1) % TAG_VOCABULARY
    present = np.arange(4)[None, :] < counts[:, None]
    effects = _effect(100, ids) * present
    signal = effects.sum(axis=1) / np.maximum(counts, 1)
    hashed = (ids.astype(np.uint64) * np.uint64(2654435761) + np.uint64(100)) % (2**32)
    names = [[f"{h:08x}" for h in row] for row in hashed.tolist()]
    cells = np.array(["|".join(row[:k]) for row, k in zip(names, counts, strict=True)], object)
    return cells, signal


def ctr_chunks(
    rows: int, seed: int, vocab_size: int, chunk_rows: int = 100_000, tags: bool = False
):
    """Criteo-shaped click rows, chunk by chunk, so any row count runs in flat memory.

    Numerical I1..I13 are skewed counts; categorical C1..C26 are Zipf-distributed
    ids over vocabularies up to ``vocab_size``, written as 8-digit hex like
    Criteo's. The label is drawn from a logistic model with small main effects
    and the planted crosses in :data:`CTR_CROSSES` (:data:`TAG_CROSSES` with
    ``tags``, which adds the list column :data:`TAGS`); each chunk also carries
    that model's click probability under :data:`TRUTH_COLUMN`.
    """
    rng = np.random.default_rng(seed)
    sizes = ctr_vocab_sizes(vocab_size)
    done = 0
    while done < rows:
        n = min(chunk_rows, rows - done)
        done += n
        counts = rng.poisson(np.exp(rng.normal(1.0, 1.0, size=(n, 13))))
        z = {name: np.log1p(counts[:, i]) - 1.0 for i, name in enumerate(CTR_NUMERICAL)}
        ids = {
            name: (rng.zipf(1.3, size=n) - 1) % sizes[i] for i, name in enumerate(CTR_CATEGORICAL)
        }
        effects = {name: _effect(i, ids[name]) for i, name in enumerate(CTR_CATEGORICAL)}
        signal = {**z, **effects}
        if tags:
            cells, signal[TAGS] = _tags(rng, n)
        logit = -1.0 + 0.2 * sum(z[f] for f in CTR_NUMERICAL[:4])
        logit = logit + 0.5 * sum(effects[f] for f in CTR_CATEGORICAL[:6])
        for a, b, weight in TAG_CROSSES if tags else CTR_CROSSES:
            logit = logit + weight * signal[a] * signal[b]
        probability = 1.0 / (1.0 + np.exp(-logit))
        label = (rng.random(n) < probability).astype(np.int64)
        chunk = {"label": label, TRUTH_COLUMN: probability}
        chunk.update({name: counts[:, i] for i, name in enumerate(CTR_NUMERICAL)})
        for i, name in enumerate(CTR_CATEGORICAL):
            hashed = (ids[name].astype(np.uint64) * np.uint64(2654435761) + np.uint64(i)) % (2**32)
            chunk[name] = np.array([f"{h:08x}" for h in hashed.tolist()], dtype=object)
        if tags:
            chunk[TAGS] = cells
        yield chunk
