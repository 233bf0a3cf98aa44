"""The batch challenger: scikit-learn's HistGradientBoosting (one thread) retrained on
the released examples on an event-time schedule.

It keeps the newest ``max_examples`` released examples (inputs as float32 rows). When an
example released at least ``every_days`` after the last retraining arrives, the model
is retrained on the examples before it, so the schedule and the training sets depend
only on the example stream, never on wall-clock time or on how it was chunked.

Cross-fitting keeps an example's own future out of its prequential score: the users
are split in two folds (a hash of the user id), one model per fold, and an example is
scored by the other fold's model, which never saw that user's labels (a tree ensemble
trained on the user's later snapshots knows their activity inside the example's label
window: judged on its own users its window ROC-AUC on the sparse profile was 0.80, the
anchors 0.72). Workers serve the mean of the two. :meth:`queue` queues, :meth:`flush`
scores (one predict call per fold and chunk).

Retraining runs off the learner's process (one worker process, started and warmed up
with the first candidate, so a fit competes with the learner for neither the GIL nor its
core): the training set is the buffer at the trigger, and the new models serve from the
first example released ``serve_after_days`` of event time later (default: one schedule
step, when the next retraining starts; the learner waits for the fit if it is not done
by then), so which model scores which example still depends only on the example stream.
A fit that dies with its worker process is redone in the learner's process.

>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> c = BatchCandidate(("days_since_last_event", "n_events_30d"), every_days=1,
...                    min_examples=100, serve_after_days=0.25)
>>> day = 86_400_000
>>> for i in range(600):
...     d = float(rng.uniform(0, 40))
...     f = {"days_since_last_event": d, "n_events_30d": float(rng.integers(0, 9))}
...     _ = c.queue(f, d > 20, release_ms=i * day // 100, fold=i % 2)
>>> c.flush() and c.trained_on > 0, c.retrains > 1
(True, True)
>>> s = c.score_rows(np.array([[35.0, 1.0], [1.0, 8.0]]))
>>> bool(s[0] > 0.8 > 0.2 > s[1])
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from core import fit_process
from core.fit_process import warm_up

__all__ = ["BatchCandidate", "BatchScorer", "warm_up"]

DAY_MS = 86_400_000
def _fit(x: np.ndarray, y: np.ndarray, folds: np.ndarray, max_iter: int, seed: int
         ) -> tuple[Any, int, np.ndarray, np.ndarray, np.ndarray]:
    """Two fold models on (x, y), and the training set's moments and input directions."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # see core.baselines
        model = tuple(HistGradientBoostingClassifier(
            max_iter=max_iter, random_state=seed).fit(x[folds == k], y[folds == k])
            for k in (0, 1))
    mean, std = x.mean(axis=0), x.std(axis=0)
    yc = y - y.mean()
    sign = np.sign(((x - mean) * yc[:, None]).sum(axis=0))
    return model, len(y), mean, np.where(std > 0, std, 1.0), sign


class BatchCandidate:
    name = "batch:hgb"
    value_inputs = True

    def __init__(self, names: Sequence[str], every_days: int = 7,
                 max_examples: int = 20_000, min_examples: int = 500, seed: int = 0,
                 max_iter: int = 100, horizon_days: int = 30,
                 serve_after_days: float | None = None) -> None:
        self.names = tuple(names)
        self.every_ms = every_days * DAY_MS
        # the retrained models serve this long after the trigger (at most one step)
        after = every_days if serve_after_days is None else min(serve_after_days, every_days)
        self.serve_after_ms = int(after * DAY_MS)
        self.h_ms = horizon_days * DAY_MS
        self.min_examples, self.seed, self.max_iter = min_examples, seed, max_iter
        # a ring buffer of the newest examples (compact in a checkpoint: two arrays)
        self.buf = np.zeros((max_examples, len(self.names)), dtype=np.float32)
        self.ybuf = np.zeros(max_examples, dtype=np.int8)
        self.fbuf = np.zeros(max_examples, dtype=np.int8)  # the user's fold, 0 or 1
        self.count = self.pos = 0
        self.model: Any = None  # (fold 0 model, fold 1 model) once trained
        self.trained_at = -1  # release time of the last retraining
        self.trained_on = 0
        self.training_on = 0  # examples in the training set of the fit under way
        self.job: Future[Any] | None = None  # that fit (not pickled: see __getstate__)
        self.job_args: tuple[Any, ...] | None = None  # its inputs (redone if it dies)
        self.fitted: Any = None  # its result, once a checkpoint waited for it
        self.serve_ms = -1  # release time from which it serves
        self.retrains = 0
        self.mean = np.zeros(len(self.names))
        self.std = np.ones(len(self.names))
        self.sign = np.zeros(len(self.names))  # direction of each input (reasons)
        # (inputs, label, fold) of the examples not yet scored / not yet in the ring
        self.pending: list[tuple[list[float], bool, int]] = []
        self.unstored: list[tuple[list[float], bool, int]] = []
        self.results: list[tuple[float, bool]] = []
        fit_process.pool()  # started (and sklearn imported there) long before the first fit

    def queue(self, f: Mapping[str, float], y: bool, release_ms: int, fold: int = 0) -> bool:
        """Queue one example (of a user in ``fold``) for a prequential score, then learn
        it; starts a retraining first when the schedule says so (returns whether it did).
        The example reaches the ring buffer with the others of its chunk (one array
        write per chunk), before any fit reads the buffer."""
        retrained = False
        if (self.job is not None or self.fitted is not None) and release_ms >= self.serve_ms:
            self._score_pending()  # the examples before: the models of their time
            self._adopt()
        due = self.trained_at < 0 or release_ms >= self.trained_at + self.every_ms
        if due and self.job is None and self.fitted is None:
            self._store()
            both = all(0 < p < n for n, p in zip(*self._fold_counts(), strict=True))
            if self.count >= self.min_examples and both:
                self._score_pending()  # with the models of their time
                retrained = self._retrain()
                if retrained:
                    self.trained_at = release_ms
                    self.serve_ms = release_ms + self.serve_after_ms
        example = ([f[n] for n in self.names], y, fold & 1)
        self.pending.append(example)
        self.unstored.append(example)
        return retrained

    def _store(self) -> None:
        """Write the examples queued since the last store into the ring buffer."""
        rows, self.unstored = self.unstored, []
        if not rows:
            return
        cap, m = len(self.ybuf), len(rows)
        drop = max(0, m - cap)  # more than the ring holds: the newest ``cap`` stay
        idx = (self.pos + drop + np.arange(m - drop)) % cap
        self.buf[idx] = np.array([r for r, _, _ in rows[drop:]], dtype=np.float32)
        self.ybuf[idx] = np.fromiter((int(v) for _, v, _ in rows[drop:]), np.int8, m - drop)
        self.fbuf[idx] = np.fromiter((k for _, _, k in rows[drop:]), np.int8, m - drop)
        self.pos = (self.pos + m) % cap
        self.count = min(cap, self.count + m)

    def _fold_counts(self) -> tuple[list[int], list[int]]:
        """Examples and churners per fold in the ring buffer."""
        folds, ys = self.fbuf[:self.count], self.ybuf[:self.count]
        return ([int((folds == k).sum()) for k in (0, 1)],
                [int(ys[folds == k].sum()) for k in (0, 1)])

    def flush(self) -> list[tuple[float, bool]]:
        """Scores of the examples queued since the last flush (NaN before the first
        model), in order."""
        self._score_pending()
        out, self.results = self.results, []
        return out

    def _score_pending(self) -> None:
        if not self.pending:
            return
        scores = np.full(len(self.pending), np.nan)
        if self.model is not None:  # each example by the model of the other fold
            x = np.array([r for r, _, _ in self.pending], dtype=np.float32)
            folds = np.array([k for _, _, k in self.pending])
            for k in (0, 1):
                rows = folds == k
                if rows.any():
                    scores[rows] = self._predict(self.model[1 - k], x[rows])
        self.results.extend(zip(scores.tolist(), (y for _, y, _ in self.pending), strict=True))
        self.pending = []

    def _retrain(self) -> bool:
        """Start a fit on the buffer as it is (in the background)."""
        self._store()
        order = np.roll(np.arange(self.count), -self.pos) if self.count == len(self.ybuf) \
            else np.arange(self.count)  # oldest first: the fit does not depend on the ring
        x = self.buf[order].astype(np.float64)
        y = self.ybuf[order].astype(np.int64)
        folds = self.fbuf[order]
        if any(len(set(y[folds == k].tolist())) < 2 for k in (0, 1)):
            return False  # a fold without both classes: keep the models as they are
        self.training_on = len(y)
        self.job_args = (x, y, folds, self.max_iter, self.seed)
        try:
            self.job = fit_process.pool().submit(_fit, *self.job_args)
        except RuntimeError:  # the worker process died after its last fit: a new one
            fit_process.reset_pool()
            self.job = fit_process.pool().submit(_fit, *self.job_args)
        return True

    def _adopt(self) -> None:
        """Serve the fit started last (waiting for it if it is not done)."""
        fitted = self.fitted if self.fitted is not None else self._result()
        self.job = self.fitted = self.job_args = None
        self.model, self.trained_on, self.mean, self.std, self.sign = fitted
        self.retrains += 1

    def _result(self) -> Any:
        """The fit under way, waited for; redone here if its worker process died."""
        assert self.job is not None and self.job_args is not None
        try:
            return self.job.result()
        except Exception:  # BrokenProcessPool, ...; a real fit error repeats here
            fit_process.reset_pool()
            return _fit(*self.job_args)

    def __getstate__(self) -> dict[str, Any]:
        """A checkpoint holds the fit under way as its result (it serves at the same
        example after a restore)."""
        state = self.__dict__.copy()
        if self.job is not None:
            state["fitted"], state["job"] = self._result(), None
        state["job_args"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("job", None)  # checkpoints from before the background fit
        state.setdefault("fitted", None)
        state.setdefault("serve_ms", -1)
        state.setdefault("training_on", 0)
        state.setdefault("serve_after_ms", 0)
        state.setdefault("job_args", None)
        state.setdefault("unstored", [])  # older checkpoints wrote every example at once
        self.__dict__.update(state)

    def score_rows(self, x: np.ndarray) -> np.ndarray:
        """What workers serve: the mean of the two fold models."""
        if self.model is None:
            return np.full(len(x), np.nan)
        return (self._predict(self.model[0], x) + self._predict(self.model[1], x)) / 2

    @staticmethod
    def _predict(model: Any, x: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return np.asarray(model.predict_proba(x.astype(np.float64))[:, 1])

    def predict(self, f: Mapping[str, float]) -> float:  # one user (tests, the API)
        return float(self.score_rows(np.array([[f[n] for n in self.names]]))[0])

    def scorer(self, version: int) -> BatchScorer:
        return BatchScorer(self, version)


class BatchScorer:
    """Risks from the batch model; reasons: the inputs whose standardized deviation from
    the training mean, times the sign of their correlation with churn there, is largest."""

    value_inputs = True

    def __init__(self, cand: BatchCandidate, version: int, k: int = 3) -> None:
        from core.model import REASON_NAMES

        self.cand, self.name, self.version, self.k = cand, cand.name, version, k
        index = {n: i for i, n in enumerate(REASON_NAMES)}
        self.idx = [index[n] for n in cand.names]

    def score(self, features: Sequence[Mapping[str, float]]
              ) -> tuple[list[float], list[tuple[tuple[int, float], ...]]]:
        if not features:
            return [], []
        c = self.cand
        x = np.array([[f[n] for n in c.names] for f in features], dtype=np.float64)
        risks = c.score_rows(x)
        contrib = (x - c.mean) / c.std * c.sign
        order = np.argsort(-contrib, axis=1, kind="stable")[:, :self.k]
        why = [tuple((self.idx[j], float(row[j])) for j in o if row[j] > 0)
               for row, o in zip(contrib, order, strict=True)]
        return risks.tolist(), why
