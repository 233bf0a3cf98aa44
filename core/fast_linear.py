"""River's ``StandardScaler | LogisticRegression`` learning step on arrays (pure).

The learner's two linear candidates (the model and the stacked model) share one scaler
(:class:`SharedScaler`, below). Per example River walks dictionaries: the
scaler's update and two transforms, two predictions and two SGD steps cost about two
thirds of the learner's time. :class:`ArrayPair` does the same arithmetic on numpy
arrays, in River's order of operations: Welford's update of the scaler (``counts``,
``means``, ``vars``), ``z = (x - mean) / var ** 0.5`` (0 where the variance is 0), the
log-loss gradient with River's cut-offs at |z| > 18, the clipped gradient, SGD on the
weights and the intercept. Elementwise steps are the same IEEE operations; only the dot
products sum in another order, so predictions agree with River's to about 1e-12 (a test
holds them to separately built River pipelines over thousands of examples).

The arrays are the state while learning; :meth:`ArrayPair.sync` writes them into the
River objects (checkpoints, scorers and reasons read those), :meth:`ArrayPair.load`
reads them back. Only plain SGD with constant steps and the unweighted log loss take
this path (:func:`supported`); any other pipeline learns through River itself.

>>> from core.model import make_pipeline
>>> a, b = make_pipeline("logreg"), make_pipeline("logreg")
>>> b.steps["StandardScaler"] = a.steps["StandardScaler"]
>>> pair = ArrayPair(a, b, drop_a=frozenset({"x2"}))
>>> xs = [{"x1": float(i % 7), "x2": float(i % 3)} for i in range(50)]
>>> out = [pair.learn(x, i % 2 == 0) for i, x in enumerate(xs)]
>>> pair.sync()
>>> ref_a, ref_b = make_pipeline("logreg"), make_pipeline("logreg")
>>> for i, x in enumerate(xs):
...     pa = ref_a.predict_proba_one({"x1": x["x1"]})[True]; pb = ref_b.predict_proba_one(x)[True]
...     assert abs(pa - out[i][0]) < 1e-12 and abs(pb - out[i][1]) < 1e-12
...     ref_a.learn_one({"x1": x["x1"]}, i % 2 == 0); ref_b.learn_one(x, i % 2 == 0)
>>> abs(a.steps["LogisticRegression"].weights["x1"]
...     - ref_a.steps["LogisticRegression"].weights["x1"]) < 1e-12
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from core.candidates import OnlineCandidate


def supported(pipeline: Any) -> bool:
    """``StandardScaler(with_std) | LogisticRegression`` with SGD at constant steps,
    the unweighted log loss and no L1 penalty."""
    from river import linear_model, optim, preprocessing

    steps = list(getattr(pipeline, "steps", {}).values())
    if len(steps) != 2 or type(steps[0]) is not preprocessing.StandardScaler:
        return False
    sc, lr = steps
    if not sc.with_std or sc.window_size is not None:
        return False
    if type(lr) is not linear_model.LogisticRegression or lr.l1 != 0:
        return False
    opt, loss = lr.optimizer, lr.loss
    return (type(opt) is optim.SGD and type(opt.lr) is optim.schedulers.Constant
            and type(lr.intercept_lr) is optim.schedulers.Constant
            and type(loss) is optim.losses.Log
            and loss.weight_pos == 1.0 and loss.weight_neg == 1.0)


class _Linear:
    """One logistic regression's weights over a subset (``idx``) of the inputs."""

    def __init__(self, model: Any, keys: tuple[str, ...], idx: np.ndarray) -> None:
        self.model, self.idx = model, idx
        self.keys = tuple(keys[i] for i in idx)
        weights = model.weights
        self.w = np.array([weights.get(k, 0.0) for k in self.keys])
        self.b = float(model.intercept)
        self.lr = float(model.optimizer.lr.learning_rate)
        self.ilr = float(model.intercept_lr.learning_rate)
        self.l2, self.clip = float(model.l2), float(model.clip_gradient)
        self.steps = 0  # SGD steps since the last sync

    def predict(self, z: np.ndarray) -> float:
        raw = float(np.dot(self.w, z)) + self.b
        if raw < -30:
            return 0.0
        if raw > 30:
            return 1.0
        return 1 / (1 + math.exp(-raw))

    def learn(self, z: np.ndarray, y: bool) -> None:
        raw = float(np.dot(self.w, z)) + self.b
        sign = 1 if y else -1
        m = raw * sign
        g = (math.exp(-m) * -sign if m > 18.0 else -sign if m < -18.0
             else -sign / (math.exp(m) + 1.0))
        g = max(-self.clip, min(self.clip, float(g)))
        grad = z * g
        if self.l2:
            grad += self.w * self.l2
        self.b -= self.ilr * g
        self.w -= self.lr * grad
        self.steps += 1

    def sync(self) -> None:
        from river import utils

        self.model._weights = utils.VectorDict(dict(zip(self.keys, self.w.tolist(),
                                                        strict=True)))
        self.model.intercept = self.b
        self.model.optimizer.n_iterations += self.steps
        self.steps = 0


class ArrayPair:
    """Two ``StandardScaler | LogisticRegression`` pipelines sharing one scaler, learning
    on arrays; ``drop_a``/``drop_b``: the inputs each leaves out."""

    def __init__(self, a: Any, b: Any, drop_a: frozenset[str] = frozenset(),
                 drop_b: frozenset[str] = frozenset()) -> None:
        self.a, self.b = a, b
        self.drop_a, self.drop_b = drop_a, drop_b
        self.keys: tuple[str, ...] = ()
        self.clean = True  # the River objects hold the current state

    def _start(self, keys: tuple[str, ...]) -> None:
        sc = self.a.steps["StandardScaler"]
        self.keys = keys
        self.n = np.array([float(sc.counts.get(k, 0)) for k in keys])
        self.mean = np.array([sc.means.get(k, 0.0) for k in keys])
        self.var = np.array([sc.vars.get(k, 0.0) for k in keys])
        self._scale()
        self.la = _Linear(self.a.steps["LogisticRegression"], keys,
                          np.array([i for i, k in enumerate(keys) if k not in self.drop_a],
                                   dtype=np.intp))
        self.lb = _Linear(self.b.steps["LogisticRegression"], keys,
                          np.array([i for i, k in enumerate(keys) if k not in self.drop_b],
                                   dtype=np.intp))

    def load(self) -> None:
        """Forget the arrays: the next example reads the River objects again."""
        self.keys = ()
        self.clean = True

    def _scale(self) -> None:
        """The scaler's std (``var ** 0.5``) and where it is not 0, after an update."""
        self.std = self.var ** 0.5
        self.nonzero = self.var != 0

    def _z(self, xv: np.ndarray) -> np.ndarray:
        return np.divide(xv - self.mean, self.std, out=np.zeros_like(xv),
                         where=self.nonzero)

    def learn(self, x: Mapping[str, float], y: bool) -> tuple[float, float]:
        """Predict with both (before learning), then learn: River's ``learn_one`` of
        the scaler, then of each regression on the newly scaled inputs."""
        keys = tuple(x)
        if keys != self.keys:
            self.sync()
            self._start(keys)
        self.clean = False
        xv = np.fromiter(x.values(), float, len(keys))
        z = self._z(xv)
        la, lb = self.la, self.lb
        out = (la.predict(z[la.idx]), lb.predict(z[lb.idx]))
        self.n += 1.0
        old = self.mean.copy()
        self.mean += (xv - old) / self.n
        self.var += ((xv - old) * (xv - self.mean) - self.var) / self.n
        self._scale()
        z = self._z(xv)
        la.learn(z[la.idx], y)
        lb.learn(z[lb.idx], y)
        return out

    def sync(self) -> None:
        """Write the arrays into the River objects."""
        if self.clean or not self.keys:
            self.clean = True
            return
        sc = self.a.steps["StandardScaler"]
        for k, n, m, v in zip(self.keys, self.n.tolist(), self.mean.tolist(),
                              self.var.tolist(), strict=True):
            sc.counts[k], sc.means[k], sc.vars[k] = int(n), m, v
        self.la.sync()
        self.lb.sync()
        self.clean = True


class SharedScaler:
    """The model and the stacked candidate, both ``StandardScaler | LogisticRegression``,
    with one scaler: River's scaler is per input, so one over the union of their inputs
    is each one's own scaler, and the learner updates and applies it once per example
    instead of twice. The steps are exactly those of River's ``Pipeline.learn_one``
    (scaler learns, then transforms, then the regression learns), on arrays
    (:class:`core.fast_linear.ArrayPair`) when River's plain SGD and log loss are used; a
    test holds the candidates' predictions equal to separately built pipelines.
    :meth:`sync` writes the arrays into the River objects (before a pickle or a scorer)."""

    def __init__(self, a: OnlineCandidate, b: OnlineCandidate) -> None:
        self.a, self.b = a, b
        self.scaler = a.pipeline.steps["StandardScaler"]
        b.pipeline.steps["StandardScaler"] = self.scaler
        self.lr_a = a.pipeline.steps["LogisticRegression"]
        self.lr_b = b.pipeline.steps["LogisticRegression"]
        self.arrays = ArrayPair(a.pipeline, b.pipeline, a.drop, b.drop) \
            if supported(a.pipeline) and supported(b.pipeline) else None
        a.pair = b.pair = self

    def sync(self) -> None:
        arrays = getattr(self, "arrays", None)  # None in checkpoints from before it
        if arrays is not None:
            arrays.sync()

    def load(self) -> None:
        """The River objects changed outside the pair: read them again."""
        arrays = getattr(self, "arrays", None)
        if arrays is not None:
            arrays.load()

    def learn(self, x: dict[str, float], y: bool) -> dict[str, float]:
        a, b = self.a, self.b
        arrays = getattr(self, "arrays", None)
        if arrays is not None:
            pa, pb = arrays.learn(x, y)
            a.learned += 1
            b.learned += 1
            return {a.name: pa, b.name: pb}
        sc = self.scaler
        keys_a = a.drop
        z = sc.transform_one(x)
        za = {k: v for k, v in z.items() if k not in keys_a} if keys_a else z
        zb = {k: v for k, v in z.items() if k not in b.drop} if b.drop else z
        out = {a.name: float(self.lr_a.predict_proba_one(za).get(True, 0.5)),
               b.name: float(self.lr_b.predict_proba_one(zb).get(True, 0.5))}
        sc.learn_one(x)
        z = sc.transform_one(x)
        self.lr_a.learn_one({k: v for k, v in z.items() if k not in keys_a} if keys_a else z, y)
        self.lr_b.learn_one({k: v for k, v in z.items() if k not in b.drop} if b.drop else z, y)
        a.learned += 1
        b.learned += 1
        return out


def share_scaler(a: Any, b: Any) -> SharedScaler | None:
    from core.candidates import OnlineCandidate
    from core.scoring import _linear_parts

    if not (isinstance(a, OnlineCandidate) and isinstance(b, OnlineCandidate)):
        return None
    if _linear_parts(a.pipeline) is None or _linear_parts(b.pipeline) is None:
        return None
    if type(a.pipeline.steps["StandardScaler"]) is not type(b.pipeline.steps["StandardScaler"]):
        return None
    return SharedScaler(a, b)
