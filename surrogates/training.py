"""Training of element surrogates as in seed 002 (sec. 2.2).

Procedure (seed 002, sec. 2.2): a random 70/15/15 train/validation/test
split; early stopping on the validation set; several restarts keeping the
best on validation; the hidden-layer size ``n`` chosen by k-fold
cross-validation (minimum of the bias/variance "bathtub" curve of the MSE);
then retraining at ``n - 3 ... n + 3`` and keeping the best on validation.

Seed 002 trained with MATLAB's Levenberg-Marquardt (``trainlm``). We use the
same algorithm (:func:`fit_lm`, full batch, Jacobian by explicit back-propagation)
for small nets, where it reaches far lower errors than first-order methods in
the same time; full-batch L-BFGS (:func:`fit_lbfgs`) is the alternative for
nets too large for the Gauss-Newton matrix (thousands of weights). Losses are MSE on scaled outputs.
"""
from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from nanosep.surrogates.mlp import DEEP_HIDDEN, OutputActivation, build_mlp
from nanosep.surrogates.scaling import (
    Affine,
    fit_input_scaling,
    fit_output_scaling,
    output_forward,
    scale_inputs,
    scale_outputs,
    unscale_outputs,
)
from torch import nn
from torch.func import functional_call, jacfwd

from nanosep.errors import InvalidInputError, NanosepError

log = logging.getLogger(__name__)

Optimizer = Literal["lm", "lbfgs"]
#: progress callback: called with a short description after each finished fit
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Split:
    """Row indices of the train/validation/test sets."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def random_split(n: int, seed: int, fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)) -> Split:
    """Seeded random split of ``n`` rows (seed 002: 70/15/15 at random)."""
    if n < 10:
        raise InvalidInputError(f"need at least 10 cases to split, got {n}")
    if not math.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        raise InvalidInputError(f"split fractions must be positive and sum to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    n_tr = round(fractions[0] * n)
    n_va = round(fractions[1] * n)
    return Split(np.sort(perm[:n_tr]), np.sort(perm[n_tr:n_tr + n_va]), np.sort(perm[n_tr + n_va:]))


@dataclass
class FitResult:
    model: nn.Module
    val_mse: float
    train_mse: float
    epochs: int


def _mse(model: nn.Module, X: torch.Tensor, Y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.mean((model(X) - Y) ** 2))


def _mlp_jacobian(model: nn.Sequential, X: torch.Tensor) -> torch.Tensor:
    """Jacobian of the flattened outputs (N*n_out) w.r.t. all parameters (in ``named_parameters`` order)
    of a ``Linear``/``Tanh`` stack, by explicit back-propagation per output (far cheaper than
    ``torch.func.jacfwd`` for these small nets)."""
    linears: list[nn.Linear] = []
    tanh_after: list[bool] = []
    for m in model:
        if isinstance(m, nn.Linear):
            linears.append(m)
            tanh_after.append(False)
        elif isinstance(m, nn.Tanh):
            tanh_after[-1] = True
        else:
            raise InvalidInputError(f"Levenberg-Marquardt supports Linear/Tanh stacks only, found {type(m).__name__}")
    acts = [X]
    with torch.no_grad():
        for lin, th in zip(linears, tanh_after):
            a = acts[-1] @ lin.weight.T + lin.bias
            acts.append(torch.tanh(a) if th else a)
        N, n_out = X.shape[0], acts[-1].shape[1]
        blocks = []
        for k in range(n_out):
            delta = torch.zeros(N, n_out, dtype=X.dtype)
            delta[:, k] = 1.0
            grads = []
            for li in range(len(linears) - 1, -1, -1):
                if tanh_after[li]:
                    delta = delta * (1.0 - acts[li + 1] ** 2)
                grads.append(((delta[:, :, None] * acts[li][:, None, :]).reshape(N, -1), delta))
                if li:
                    delta = delta @ linears[li].weight
            cols = []
            for gW, gb in reversed(grads):
                cols += [gW, gb]
            blocks.append(torch.cat(cols, dim=1))
        return torch.stack(blocks, dim=1).reshape(N * n_out, -1)


def fit_lm(model: nn.Module, Xtr: torch.Tensor, Ytr: torch.Tensor, Xva: torch.Tensor, Yva: torch.Tensor, *,
           max_epochs: int = 1000, max_fail: int = 6, mu: float = 1e-3, mu_dec: float = 0.1, mu_inc: float = 10.0,
           mu_max: float = 1e10, min_grad: float = 1e-10,
           residual_weights: tuple[torch.Tensor, torch.Tensor] | None = None) -> FitResult:
    """Levenberg-Marquardt with validation early stopping (MATLAB ``trainlm`` defaults).

    Each epoch solves ``(J^T J + mu I) dp = -J^T r`` for the residuals of all
    training points; ``mu`` shrinks after a successful step and grows
    otherwise. Training stops after ``max_fail`` epochs in a row without a new
    best validation MSE; the best-on-validation parameters are returned. ``residual_weights``
    (train, validation; each broadcastable to the targets) multiply the residuals: a weighted
    MSE on both sets (e.g. ``|dR/du|`` to fit a transformed output for accuracy in ``R``).
    """
    names = [n for n, _ in model.named_parameters()]
    w_tr, w_va = residual_weights if residual_weights is not None else (None, None)
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    p = torch.cat([q.detach().reshape(-1) for q in model.parameters()]).clone()

    def unflat(v: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.reshape(s) for n, t, s in zip(names, torch.split(v, sizes), shapes)}

    def resid(v: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        r = functional_call(model, unflat(v), (X,)) - Y
        return (r if w is None else r * w).reshape(-1)

    eye = torch.eye(p.numel(), dtype=p.dtype)
    with torch.no_grad():
        r = resid(p, Xtr, Ytr, w_tr)
        sse = float(r @ r)
        best_val = float(torch.mean(resid(p, Xva, Yva, w_va) ** 2))
    best_p, fails, epoch = p.clone(), 0, 0
    analytic = all(isinstance(m, (nn.Linear, nn.Tanh)) for m in model)
    for epoch in range(1, max_epochs + 1):
        if analytic:
            with torch.no_grad():
                for q, t in zip(model.parameters(), torch.split(p, sizes)):
                    q.copy_(t.reshape(q.shape))
            J = _mlp_jacobian(model, Xtr)
            if w_tr is not None:
                J = J * torch.broadcast_to(w_tr, Ytr.shape).reshape(-1, 1)
        else:
            J = jacfwd(resid)(p, Xtr, Ytr, w_tr)
        with torch.no_grad():
            g = J.T @ r
            if float(g.abs().max()) < min_grad:
                break
            H = J.T @ J
            improved = False
            while mu <= mu_max:
                dp = torch.linalg.solve(H + mu * eye, -g)
                r_new = resid(p + dp, Xtr, Ytr, w_tr)
                sse_new = float(r_new @ r_new)
                if sse_new < sse:
                    p, r, sse, mu, improved = p + dp, r_new, sse_new, mu * mu_dec, True
                    break
                mu *= mu_inc
            if not improved:
                break
            val = float(torch.mean(resid(p, Xva, Yva, w_va) ** 2))
        if val < best_val:
            best_val, best_p, fails = val, p.clone(), 0
        else:
            fails += 1
            if fails >= max_fail:
                break
    with torch.no_grad():
        for (n, q), t in zip(model.named_parameters(), torch.split(best_p, sizes)):
            q.copy_(t.reshape(q.shape))
    return FitResult(model, best_val, _mse(model, Xtr, Ytr), epoch)


def fit_lbfgs(model: nn.Module, Xtr: torch.Tensor, Ytr: torch.Tensor, Xva: torch.Tensor, Yva: torch.Tensor, *,
              max_epochs: int = 300, max_fail: int = 10, inner_iter: int = 20) -> FitResult:
    """Full-batch L-BFGS (strong Wolfe line search) with validation early stopping.

    One "epoch" is ``inner_iter`` L-BFGS iterations; the validation MSE is
    checked after each, and the best-on-validation weights are returned.
    """
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=inner_iter, history_size=50,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-16)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.mean((model(Xtr) - Ytr) ** 2)
        loss.backward()
        return loss

    best_val, best_state, fails, epoch = _mse(model, Xva, Yva), copy.deepcopy(model.state_dict()), 0, 0
    for epoch in range(1, max_epochs + 1):
        opt.step(closure)
        val = _mse(model, Xva, Yva)
        if not math.isfinite(val):
            break
        if val < best_val:
            best_val, best_state, fails = val, copy.deepcopy(model.state_dict()), 0
        else:
            fails += 1
            if fails >= max_fail:
                break
    model.load_state_dict(best_state)
    return FitResult(model, best_val, _mse(model, Xtr, Ytr), epoch)


def fit(model: nn.Module, Xtr, Ytr, Xva, Yva, optimizer: Optimizer = "lm", **kw) -> FitResult:
    """Fit with the chosen optimizer (arrays or tensors, float64)."""
    t = [torch.as_tensor(a, dtype=torch.float64) for a in (Xtr, Ytr, Xva, Yva)]
    if optimizer == "lm":
        return fit_lm(model, *t, **kw)
    if optimizer == "lbfgs":
        return fit_lbfgs(model, *t, **kw)
    raise InvalidInputError(f"unknown optimizer {optimizer!r}; choose 'lm' or 'lbfgs'")


@dataclass(frozen=True)
class NetSpec:
    """What to build: hidden layer sizes, output activation, optimizer."""

    hidden: tuple[int, ...]
    output_activation: OutputActivation = "tanh"
    optimizer: Optimizer = "lm"

    @property
    def kind(self) -> str:
        return "shallow_mlp" if len(self.hidden) == 1 else "deep_mlp"

    def build(self, n_in: int, n_out: int, seed: int) -> nn.Sequential:
        return build_mlp(n_in, self.hidden, n_out, output_activation=self.output_activation, seed=seed)


def train_best_of(spec: NetSpec, Ztr, Ttr, Zva, Tva, *, restarts: int, seed: int,
                  progress: Progress | None = None, **fit_kw) -> FitResult:
    """``restarts`` fits from different random initializations; the best on validation wins."""
    best: FitResult | None = None
    for k in range(restarts):
        model = spec.build(Ztr.shape[1], Ttr.shape[1], seed=seed + 7919 * k)
        res = fit(model, Ztr, Ttr, Zva, Tva, spec.optimizer, **fit_kw)
        log.debug("hidden=%s restart %d: val MSE %.3e, %d epochs", spec.hidden, k, res.val_mse, res.epochs)
        if best is None or res.val_mse < best.val_mse:
            best = res
        if progress:
            progress(f"hidden {list(spec.hidden)} restart {k + 1}/{restarts}")
    assert best is not None
    return best


def cross_validate_hidden(Z: np.ndarray, T: np.ndarray, sizes: Sequence[int], *, folds: int = 5, seed: int = 0,
                          output_activation: OutputActivation = "tanh", optimizer: Optimizer = "lm",
                          progress: Progress | None = None, **fit_kw) -> pd.DataFrame:
    """k-fold CV MSE (scaled outputs) of one-hidden-layer nets per hidden size (seed 002, sec. 2.2).

    Inside each fold, 15/85 of the training part is held out for early
    stopping. Returns columns ``hidden, cv_mse, cv_mse_std, train_mse``:
    the bias/variance curve.
    """
    if folds < 2:
        raise InvalidInputError(f"folds must be >= 2, got {folds}")
    rng = np.random.default_rng(seed)
    fold_of = rng.permutation(len(Z)) % folds
    rows = []
    for n in sizes:
        spec = NetSpec((int(n),), output_activation, optimizer)
        mses, tr = [], []
        for k in range(folds):
            test = fold_of == k
            idx = np.flatnonzero(~test)
            rng_k = np.random.default_rng(seed + 1000 * k + n)
            is_val = np.zeros(idx.size, bool)
            is_val[rng_k.permutation(idx.size)[: int(0.15 / 0.85 * idx.size)]] = True
            tr_i, va_i = idx[~is_val], idx[is_val]
            res = fit(spec.build(Z.shape[1], T.shape[1], seed=seed + 31 * k + n), Z[tr_i], T[tr_i], Z[va_i], T[va_i],
                      optimizer, **fit_kw)
            with torch.no_grad():
                pred = res.model(torch.as_tensor(Z[test])).numpy()
            mses.append(float(np.mean((pred - T[test]) ** 2)))
            tr.append(res.train_mse)
            if progress:
                progress(f"CV hidden {n} fold {k + 1}/{folds}")
        rows.append({"hidden": int(n), "cv_mse": float(np.mean(mses)), "cv_mse_std": float(np.std(mses)),
                     "train_mse": float(np.mean(tr))})
        log.info("CV hidden=%d: MSE %.3e", n, rows[-1]["cv_mse"])
    return pd.DataFrame(rows)


def output_metrics(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per output: MAE, max absolute error, RMSE (physical units)."""
    err = np.asarray(y_pred) - np.asarray(y_true)
    return {n: {"mae": float(np.mean(np.abs(err[:, j]))), "max_abs": float(np.max(np.abs(err[:, j]))),
                "rmse": float(np.sqrt(np.mean(err[:, j] ** 2)))} for j, n in enumerate(names)}


@dataclass
class TrainingResult:
    """A trained surrogate: torch model (maps scaled inputs to scaled outputs) and its bookkeeping."""

    model: nn.Sequential
    spec: NetSpec
    input_scaling: Affine
    output_scaling: Affine
    split: Split
    val_mse: float
    epochs: int
    metrics_test: dict[str, dict[str, float]]
    cv: pd.DataFrame | None = None
    candidates: pd.DataFrame = field(default_factory=pd.DataFrame)
    restarts: int = 1
    recipe: dict | None = None   # the case's training: section and each net's history (kind 'recipe')


def default_cv_sizes(max_hidden: int = 30) -> list[int]:
    """Hidden sizes scanned by default (seed 002 scanned 1..50; a coarser grid is enough to find the bottom)."""
    return [s for s in (1, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 30, 40, 50) if s <= max_hidden]


def train_surrogate(X: np.ndarray, Y: np.ndarray, *, input_scales: Sequence, input_low: Sequence[float],
                    input_high: Sequence[float], output_low: Sequence[float] | None = None,
                    output_high: Sequence[float] | None = None, kind: Literal["shallow", "deep"] = "shallow",
                    hidden: int | Sequence[int] | None = None, cv_sizes: Sequence[int] | None = None, folds: int = 5,
                    restarts: int = 3, neighbourhood: int = 3, output_activation: OutputActivation = "tanh",
                    optimizer: Optimizer | None = None, seed: int = 0, progress: Progress | None = None,
                    output_names: Sequence[str] | None = None, output_transforms: Sequence[str] | None = None,
                    **fit_kw) -> TrainingResult:
    """The full seed 002 procedure on physical ``X``/``Y``.

    ``kind="shallow"`` with ``hidden=None``: k-fold CV over ``cv_sizes`` picks
    ``n``; then ``n-neighbourhood .. n+neighbourhood`` are each trained with
    ``restarts`` restarts on the 70/15 split and the best on validation is kept.
    An integer ``hidden`` skips the CV. ``kind="deep"`` trains ``hidden``
    (default :data:`DEEP_HIDDEN`), also with Levenberg-Marquardt unless
    ``optimizer="lbfgs"`` (on the Na2SO4 element data LM reached 3-4x lower
    errors than L-BFGS for a 20-20 net). Test metrics are in physical units.
    ``output_transforms`` (per output, default identity): ``log10_transmission`` fits
    ``log10(1 - R)`` (:mod:`nanosep.surrogates.scaling`); the physical caps are transformed too.
    """
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    split = random_split(len(X), seed)
    in_sc = fit_input_scaling(input_low, input_high, input_scales)  # type: ignore[arg-type]
    tf = list(output_transforms) if output_transforms is not None else ["identity"] * Y.shape[1]
    cap_lo, cap_hi = output_low, output_high
    if any(t != "identity" for t in tf) and output_low is not None and output_high is not None:
        lo_b, hi_b = np.asarray(output_low, float), np.asarray(output_high, float)
        with np.errstate(divide="ignore", invalid="ignore"):  # a bound R >= 1 maps to u = -inf: no cap
            a = np.array([np.log10(max(1.0 - x, 0.0)) if t != "identity" else x for x, t in zip(lo_b, tf)])
            b = np.array([np.log10(max(1.0 - x, 0.0)) if t != "identity" else x for x, t in zip(hi_b, tf)])
        cap_lo = [min(x, y) for x, y in zip(a, b)]
        cap_hi = [max(x, y) for x, y in zip(a, b)]
    out_sc = fit_output_scaling(output_forward(Y[split.train], tf), cap_lo, cap_hi)
    Z, T = scale_inputs(X, in_sc, input_scales), scale_outputs(Y, out_sc, tf)  # type: ignore[arg-type]
    cv = None
    if kind == "deep":
        h = DEEP_HIDDEN if hidden is None else (tuple(hidden) if isinstance(hidden, Sequence) else (hidden, hidden))
        specs = [NetSpec(h, output_activation, optimizer or "lm")]
    elif kind == "shallow":
        if hidden is None:
            cv = cross_validate_hidden(Z[split.train], T[split.train], cv_sizes or default_cv_sizes(), folds=folds,
                                       seed=seed, output_activation=output_activation, optimizer=optimizer or "lm",
                                       progress=progress, **fit_kw)
            n = int(cv.loc[cv["cv_mse"].idxmin(), "hidden"])
            sizes = range(max(1, n - neighbourhood), n + neighbourhood + 1)
        else:
            sizes = [int(hidden if isinstance(hidden, int) else hidden[0])]
        specs = [NetSpec((s,), output_activation, optimizer or "lm") for s in sizes]
    else:
        raise InvalidInputError(f"unknown kind {kind!r}; choose 'shallow' or 'deep'")
    best: tuple[FitResult, NetSpec] | None = None
    rows = []
    for spec in specs:
        res = train_best_of(spec, Z[split.train], T[split.train], Z[split.val], T[split.val], restarts=restarts,
                            seed=seed, progress=progress, **fit_kw)
        rows.append({"hidden": str(list(spec.hidden)), "val_mse": res.val_mse, "train_mse": res.train_mse,
                     "epochs": res.epochs})
        if best is None or res.val_mse < best[0].val_mse:
            best = (res, spec)
    assert best is not None
    res, spec = best
    with torch.no_grad():
        y_test = unscale_outputs(res.model(torch.as_tensor(Z[split.test])).numpy(), out_sc, tf)
    names = list(output_names) if output_names else [f"y{j}" for j in range(Y.shape[1])]
    return TrainingResult(model=res.model, spec=spec, input_scaling=in_sc, output_scaling=out_sc, split=split,
                          val_mse=res.val_mse, epochs=res.epochs,
                          metrics_test=output_metrics(Y[split.test], y_test, names), cv=cv,
                          candidates=pd.DataFrame(rows), restarts=restarts)


# --------------------------------------------------------------------------- the `nanosep train` pipeline
MODEL_STATE = "model.pt"


def build_card(case, result: TrainingResult, xy, onnx_file: str):
    """Model card for a trained result (ONNX sha256 left empty until export)."""
    from nanosep.surrogates.card import (
        DataInfo,
        InputVar,
        ModelCard,
        OnnxInfo,
        OutputVar,
        TrainingInfo,
        nanosep_version,
    )
    from nanosep.surrogates.mlp import architecture_of

    cv = result.cv
    return ModelCard(
        name=case.name, kind=result.spec.kind, nanosep_version=nanosep_version(),
        inputs=[InputVar(name=v.name, unit=v.unit, low=v.low, high=v.high, scale=v.scale,
                                 offset=v.offset) for v in case.inputs],
        outputs=[OutputVar(name=v.name, unit=v.unit, low=v.low, high=v.high, transform=v.transform)
                 for v in case.outputs],
        input_scaling=result.input_scaling, output_scaling=result.output_scaling,
        architecture=architecture_of(result.model), onnx=OnnxInfo(file=onnx_file),
        data=DataInfo(manifest_hash=xy.manifest_hash, n_train=len(result.split.train), n_val=len(result.split.val),
                      n_test=len(result.split.test), n_failed_dropped=xy.n_failed_dropped),
        metrics={"test": result.metrics_test},
        training=TrainingInfo(restarts=result.restarts, epochs=result.epochs, optimizer=result.spec.optimizer,
                              cv_hidden_sizes=[] if cv is None else cv["hidden"].astype(int).tolist(),
                              cv_mse=[] if cv is None else cv["cv_mse"].tolist(),
                              **({} if result.recipe is None else {"recipe": result.recipe})),
    )


def save_model_dir(out: Path, case, result: TrainingResult, xy) -> Path:
    """Write model state, card, CV curve (CSV + PNG), parity and error-histogram PNGs, metrics CSV."""
    from nanosep.surrogates.card import CARD_SUFFIX
    from nanosep.surrogates.plots import (
        cv_curve_figure,
        error_histogram_figure,
        parity_figure,
        save_figure,
    )

    out.mkdir(parents=True, exist_ok=True)
    card = build_card(case, result, xy, f"{case.name}.onnx")
    torch.save(result.model.state_dict(), out / MODEL_STATE)
    card_path = card.save(out / f"{case.name}{CARD_SUFFIX}")
    if result.cv is not None:
        result.cv.to_csv(out / "cv_curve.csv", index=False)
        chosen = int(result.cv.loc[result.cv["cv_mse"].idxmin(), "hidden"])
        save_figure(cv_curve_figure(result.cv, chosen), out / "cv_curve.png")
    result.candidates.to_csv(out / "candidates.csv", index=False)
    test = result.split.test
    z = scale_inputs(xy.X[test], result.input_scaling, card.input_scales)  # type: ignore[arg-type]
    with torch.no_grad():
        y_pred = unscale_outputs(result.model(torch.as_tensor(z)).numpy(), result.output_scaling, card.output_transforms)
    names = card.output_names
    save_figure(parity_figure(xy.Y[test], y_pred, names), out / "parity.png")
    save_figure(error_histogram_figure(xy.Y[test], y_pred, names), out / "error_histogram.png")
    pd.DataFrame([{"output": k, **v} for k, v in result.metrics_test.items()]).to_csv(out / "metrics.csv", index=False)
    return card_path


def load_model_dir(model_dir: str | Path):
    """(torch model, card, card path) from a directory written by :func:`save_model_dir`."""
    from nanosep.surrogates.card import CARD_SUFFIX, ModelCard
    from nanosep.surrogates.mlp import mlp_from_architecture

    model_dir = Path(model_dir)
    cards = sorted(model_dir.glob(f"*{CARD_SUFFIX}"))
    if len(cards) != 1:
        raise InvalidInputError(f"{model_dir} must hold exactly one *{CARD_SUFFIX} (found {len(cards)})")
    card = ModelCard.load(cards[0])
    state = model_dir / MODEL_STATE
    if not state.exists():
        raise InvalidInputError(f"{model_dir} has no {MODEL_STATE} (run `nanosep train` first)")
    model = mlp_from_architecture(len(card.inputs), len(card.outputs), card.architecture)
    model.load_state_dict(torch.load(state, weights_only=True))
    return model.eval(), card, cards[0]


def train_case(case_path: str | Path, data_dir: str | Path, out: str | Path, *, kind: str = "shallow",
               hidden: int | Sequence[int] | None = None, folds: int = 5, restarts: int = 3, seed: int = 0,
               cv_sizes: Sequence[int] | None = None, output_activation: OutputActivation = "tanh",
               progress: Progress | None = None, **fit_kw) -> tuple[TrainingResult, Path]:
    """Read the surrogate case and its dataset, train as in seed 002, write the model directory."""
    from nanosep.surrogates.dataset import load_xy
    from nanosep.surrogates.domain import load_surrogate_case

    case = load_surrogate_case(case_path)
    xy = load_xy(data_dir, case.input_names, case.output_names)
    log.info("%s: %d converged cases (%d failed dropped)", case.name, len(xy.X), xy.n_failed_dropped)
    result = train_surrogate(
        xy.X, xy.Y, input_scales=[v.transform for v in case.inputs], input_low=[v.low for v in case.inputs],
        input_high=[v.high for v in case.inputs], output_low=[v.low for v in case.outputs],
        output_high=[v.high for v in case.outputs], kind=kind, hidden=hidden, cv_sizes=cv_sizes,  # type: ignore[arg-type]
        folds=folds, restarts=restarts, output_activation=output_activation, seed=seed, progress=progress,
        output_names=case.output_names, output_transforms=[o.transform for o in case.outputs], **fit_kw)
    card_path = save_model_dir(Path(out), case, result, xy)
    return result, card_path


def n_fits(kind: str, hidden: int | Sequence[int] | None, folds: int, restarts: int, n_cv: int, neighbourhood: int = 3) -> int:
    """Number of progress steps of :func:`train_case` (for a progress bar)."""
    if kind == "deep" or hidden is not None:
        return restarts
    return n_cv * folds + (2 * neighbourhood + 1) * restarts


def run_train_cli(case: Path, data: Path, out: Path, kind: str, hidden: str, folds: int, restarts: int,
                  seed: int, output_activation: str, max_hidden: int, *, extra_data: Sequence[Path] | None = None,
                  warm_start: Path | None = None) -> int:
    """``nanosep train``: train with a rich progress bar, print the test metrics; returns an exit code."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress
    from rich.table import Table

    console = Console()
    try:
        sizes_given = None if hidden == "auto" else [int(v) for v in hidden.split(",")]
    except ValueError:
        console.print(f"[red]--hidden must be 'auto', an integer or a comma list like 20,20; got {hidden!r}")
        return 2
    if sizes_given is not None and kind == "shallow" and len(sizes_given) != 1:
        console.print(f"[red]--kind shallow takes one hidden size, got {hidden!r}")
        return 2
    h = None if sizes_given is None else (sizes_given[0] if kind == "shallow" else sizes_given)
    sizes = default_cv_sizes(max_hidden)
    if kind != "recipe" and (extra_data or warm_start):
        console.print("[red]--extra-data and --warm-start apply to --kind recipe only")
        return 2
    torch.set_num_threads(1)
    try:
        if kind == "recipe":
            from nanosep.surrogates.domain import load_surrogate_case

            total = n_recipe_fits(load_surrogate_case(case))
        else:
            total = n_fits(kind, h, folds, restarts, len(sizes))
        with RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console) as bar:
            task = bar.add_task("training", total=total)

            def step(desc: str) -> None:
                bar.update(task, advance=1, description=desc)

            if kind == "recipe":
                result, card_path = train_recipe_case(case, data, out, extra_data=extra_data, warm_start=warm_start,
                                                      progress=step)
            else:
                result, card_path = train_case(case, data, out, kind=kind, hidden=h, folds=folds, restarts=restarts,
                                               seed=seed, cv_sizes=sizes, output_activation=output_activation,  # type: ignore[arg-type]
                                               progress=step)
    except NanosepError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    table = Table(title=f"{card_path.name}: hidden {list(result.spec.hidden)}, test set")
    for col in ("output", "MAE", "max |err|", "RMSE"):
        table.add_column(col)
    for name, m in result.metrics_test.items():
        table.add_row(name, f"{m['mae']:.2e}", f"{m['max_abs']:.2e}", f"{m['rmse']:.2e}")
    console.print(table)
    console.print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- per-output recipe (case `training:`)
def rejection_sensitivity(Y: np.ndarray, transform: str) -> np.ndarray:
    """``|dy/du|`` per point of one output: ``ln10 (1 - R)`` for ``log10_transmission``
    (``R = 1 - 10**u``), 1 for ``identity`` (a physical error = ``|dy/du|`` times the error in ``u``)."""
    Y = np.asarray(Y, np.float64)
    if transform == "log10_transmission":
        return math.log(10.0) * np.maximum(1.0 - Y, 0.0)
    return np.ones_like(Y)


@dataclass
class NetHistory:
    """What one per-output net went through: epochs and physical errors after each fit."""

    outputs: list[str]
    hidden: list[int]
    epochs: list[int] = field(default_factory=list)
    val_max: list[float] = field(default_factory=list)
    val_mae: list[float] = field(default_factory=list)
    chosen_fit: int = 0


def train_output_net(net, Z: np.ndarray, T: np.ndarray, sens: np.ndarray, sens_unit: np.ndarray, split: Split, *,
                     seed: int = 0, init: nn.Sequential | None = None,
                     progress: Progress | None = None) -> tuple[nn.Sequential, NetHistory]:
    """Fit one recipe net (:class:`nanosep.surrogates.recipe.OutputNet`) with weighted Levenberg-Marquardt,
    then its error-weighted rounds.

    ``Z`` scaled inputs; ``T`` scaled targets (columns = the net's outputs); ``sens`` the physical error
    per unit of scaled output at each point (``|dy/du|`` times the output factor, shape of ``T``);
    ``sens_unit`` per column the value of ``sens`` at ``R = 0`` (``ln10 * factor`` for a transmission
    output, ``factor`` for identity). Base residual weights ``w0 = max(sens, weight_floor * sens_unit)``
    make the least-squares fit one in the physical output (the floor keeps the well-rejected points,
    whose ``|dR/du|`` vanishes, in the fit). After each fit every point's weight is multiplied by
    ``1 + e / error_ref`` (``e`` its physical error), capped at ``weight_cap * w0``. ``init`` (same
    shape as ``net``) warm-starts the first fit instead of ``restarts`` random ones. Of the
    ``1 + rounds`` fits, the one with the smallest maximum physical error on the validation rows wins.
    """
    Zt = torch.as_tensor(Z, dtype=torch.float64)
    T = np.asarray(T, np.float64)
    w0 = base_weights(sens, sens_unit, net.weight_floor)
    w = w0.copy()
    hist = NetHistory(list(net.outputs), list(net.hidden))
    model = init
    best: tuple[float, dict, int] | None = None
    n_fits = 1 + net.rounds
    spec = NetSpec(tuple(net.hidden), net.output_activation, "lm")
    for k in range(n_fits):
        wt = torch.as_tensor(w)
        kw = {"max_epochs": net.epochs if k == 0 else net.round_epochs, "max_fail": net.max_fail,
              "residual_weights": (wt[split.train], wt[split.val])}
        if model is None:
            res = train_best_of(spec, Z[split.train], T[split.train], Z[split.val], T[split.val],
                                restarts=net.restarts, seed=seed, **kw)
        else:
            res = fit(model, Z[split.train], T[split.train], Z[split.val], T[split.val], "lm", **kw)
        model = res.model
        with torch.no_grad():
            e = np.abs(model(Zt).numpy() - T) * sens
        ev = e[split.val]
        hist.epochs.append(res.epochs)
        hist.val_max.append(float(ev.max()))
        hist.val_mae.append(float(ev.mean()))
        log.info("net %s %s fit %d: %d epochs, validation max %.4f MAE %.5f", net.outputs, net.hidden, k,
                 res.epochs, ev.max(), ev.mean())
        if best is None or ev.max() < best[0]:
            best = (float(ev.max()), copy.deepcopy(model.state_dict()), k)
        if progress:
            progress(f"{','.join(net.outputs)} fit {k + 1}/{n_fits}")
        w = np.minimum(w * (1.0 + e / net.error_ref), net.weight_cap * w0)
    assert best is not None and model is not None
    model.load_state_dict(best[1])
    hist.chosen_fit = best[2]
    return model, hist


@dataclass(frozen=True)
class WarmStart:
    """A trained model to start from: its torch net (scaled in -> scaled out) and card."""

    model: nn.Sequential
    card: object


def warm_start_from_card(card_path: str | Path) -> WarmStart:
    """The torch net of an exported surrogate (ONNX dense layers, float64) and its card."""
    from nanosep.surrogates.mlp import build_mlp
    from nanosep.surrogates.onnx_io import load_surrogate

    sur = load_surrogate(card_path)
    layers = sur.layers()
    acts = {L.activation for L in layers[:-1]}
    if len(acts) != 1 or layers[-1].activation not in ("linear", "tanh"):
        raise InvalidInputError(f"{card_path}: warm start needs a plain MLP (one hidden activation), got "
                                f"{[L.activation for L in layers]}")
    model = build_mlp(layers[0].W.shape[0], [L.W.shape[1] for L in layers[:-1]], layers[-1].W.shape[1],
                      activation=acts.pop(), output_activation="tanh" if layers[-1].activation == "tanh" else "identity")
    with torch.no_grad():
        for lin, L in zip([m for m in model if isinstance(m, nn.Linear)], layers):
            lin.weight.copy_(torch.as_tensor(L.W.T))
            lin.bias.copy_(torch.as_tensor(L.b))
    return WarmStart(model.eval(), sur.card)


def train_recipe(X: np.ndarray, Y: np.ndarray, case, *, warm: WarmStart | None = None,
                 warm_hidden: Sequence[Sequence[int]] | None = None, progress: Progress | None = None,
                 recipe=None, checkpoint_dir: str | Path | None = None) -> TrainingResult:
    """Train the case's ``training:`` recipe on physical ``X``/``Y``: one net per entry of
    ``training.nets`` (:func:`train_output_net`), merged block-diagonally into one MLP
    (:func:`nanosep.surrogates.merge.merge_mlps`, exact).

    Split: ``validation_fraction`` for early stopping and the choice among rounds, 5 % test, the
    rest training. Input scaling from the declared domain; output scaling from the training rows
    with the declared physical caps (as :func:`train_surrogate`), or, with a warm start, its scalings
    (``recipe.warm_output_scaling: keep``; the input scalings must agree) or new ones from the data
    with every changed net's output layer re-targeted first (``refit``, :func:`_retarget_inits`).
    ``warm``: the per-output nets are cut out of the warm-start model
    (:func:`nanosep.surrogates.merge.split_mlp`, with the hidden sizes of its card's
    ``training.recipe``, else ``warm_hidden``, else the recipe's own) and widened to the recipe's
    sizes if smaller. ``recipe`` overrides the case's ``training:`` section (e.g. a short refinement).
    ``checkpoint_dir``: each finished net is saved there (``net<k>.pt``) and a rerun with the same net
    spec and data size loads it instead of training it again (Ctrl-C loses at most the net in progress).
    """
    from nanosep.surrogates.merge import merge_mlps, split_mlp, widen_mlp

    recipe = recipe if recipe is not None else case.training
    if recipe is None:
        raise InvalidInputError(f"{case.name}: the case file has no 'training:' section (kind 'recipe' needs one)")
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    vf = recipe.validation_fraction
    split = random_split(len(X), recipe.seed, (1.0 - vf - 0.05, vf, 0.05))
    tf = [o.transform for o in case.outputs]
    scales = [v.transform for v in case.inputs]
    in_sc = fit_input_scaling([v.low for v in case.inputs], [v.high for v in case.inputs], scales)
    if warm is not None:
        if warm.card.input_names != case.input_names or warm.card.output_names != case.output_names:
            raise InvalidInputError(f"warm start {warm.card.name}: inputs/outputs {warm.card.input_names} -> "
                                    f"{warm.card.output_names} differ from the case's {case.input_names} -> "
                                    f"{case.output_names}")
        if not (np.allclose(warm.card.input_scaling.offset, in_sc.offset, rtol=0, atol=1e-12)
                and np.allclose(warm.card.input_scaling.factor, in_sc.factor, rtol=0, atol=1e-12)):
            raise InvalidInputError(f"warm start {warm.card.name}: its input scaling {warm.card.input_scaling} "
                                    f"differs from the case domain's {in_sc}")
    if warm is not None and recipe.warm_output_scaling == "keep":
        out_sc = warm.card.output_scaling
    else:
        lo = np.array([o.low for o in case.outputs], float)
        hi = np.array([o.high for o in case.outputs], float)
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.array([np.log10(max(1.0 - x, 0.0)) if t != "identity" else x for x, t in zip(lo, tf)])
            b = np.array([np.log10(max(1.0 - x, 0.0)) if t != "identity" else x for x, t in zip(hi, tf)])
        out_sc = fit_output_scaling(output_forward(Y[split.train], tf), np.minimum(a, b).tolist(),
                                    np.maximum(a, b).tolist())
    Z = scale_inputs(X, in_sc, scales)  # type: ignore[arg-type]
    T = scale_outputs(Y, out_sc, tf)
    factor = np.asarray(out_sc.factor, np.float64)
    sens_all = np.column_stack([rejection_sensitivity(Y[:, j], tf[j]) for j in range(Y.shape[1])]) * factor
    unit_all = np.array([math.log(10.0) if t == "log10_transmission" else 1.0 for t in tf]) * factor
    inits: list[nn.Sequential | None] = [None] * len(recipe.nets)
    if warm is not None:
        w_rec = (getattr(warm.card.training, "model_extra", None) or {}).get("recipe") or {}
        w_hidden = ([n["hidden"] for n in w_rec.get("nets", [])] or [list(h) for h in (warm_hidden or [])]
                    or [n.hidden for n in recipe.nets])
        parts = split_mlp(warm.model, w_hidden, [len(n.outputs) for n in recipe.nets])
        inits = [p if list(n.hidden) == list(h) else widen_mlp(p, n.hidden, seed=recipe.seed)
                 for p, n, h in zip(parts, recipe.nets, w_hidden)]
        if recipe.warm_output_scaling == "refit":
            inits = _retarget_inits(inits, recipe, Z, T, sens_all, unit_all, split.train,
                                    warm.card.output_scaling, out_sc)
    col = 0
    nets, hists = [], []
    for k, net in enumerate(recipe.nets):
        cols = list(range(col, col + len(net.outputs)))
        col += len(net.outputs)
        ck = None if checkpoint_dir is None else Path(checkpoint_dir) / f"net{k}.pt"
        if ck is not None and ck.exists():      # resume: this net finished in an earlier run
            saved = torch.load(ck, weights_only=False)
            if saved["net"] == net.model_dump(mode="json") and saved["n_rows"] == len(X):
                m = NetSpec(tuple(net.hidden), net.output_activation, "lm").build(Z.shape[1], len(cols), seed=0)
                m.load_state_dict(saved["state"])
                nets.append(m)
                hists.append(NetHistory(**saved["history"]))
                log.info("net %d %s: resumed from %s", k, net.outputs, ck)
                if progress:
                    for _ in range(1 + net.rounds):
                        progress(f"{','.join(net.outputs)} (resumed)")
                continue
        m, h = train_output_net(net, Z, T[:, cols], sens_all[:, cols], unit_all[cols], split,
                                seed=recipe.seed + 1009 * k, init=inits[k], progress=progress)
        nets.append(m)
        hists.append(h)
        if ck is not None:
            ck.parent.mkdir(parents=True, exist_ok=True)
            tmp = ck.with_suffix(".tmp")
            torch.save({"net": net.model_dump(mode="json"), "n_rows": len(X), "state": m.state_dict(),
                        "history": h.__dict__}, tmp)
            tmp.replace(ck)
    big = merge_mlps(nets).eval()
    with torch.no_grad():
        y_test = unscale_outputs(big(torch.as_tensor(Z[split.test])).numpy(), out_sc, tf)
    arch_hidden = tuple(m for m in [sum(n.hidden[j] for n in recipe.nets) for j in range(len(recipe.nets[0].hidden))])
    spec = NetSpec(arch_hidden, recipe.nets[0].output_activation, "lm")
    res = TrainingResult(model=big, spec=spec, input_scaling=in_sc, output_scaling=Affine(**out_sc.model_dump()),
                         split=split, val_mse=float("nan"), epochs=int(sum(sum(h.epochs) for h in hists)),
                         metrics_test=output_metrics(Y[split.test], y_test, case.output_names),
                         candidates=pd.DataFrame([{"outputs": ",".join(h.outputs), "hidden": str(h.hidden),
                                                   "epochs": str(h.epochs), "val_max": str(np.round(h.val_max, 5).tolist()),
                                                   "val_mae": str(np.round(h.val_mae, 6).tolist()),
                                                   "chosen_fit": h.chosen_fit} for h in hists]),
                         restarts=max(n.restarts for n in recipe.nets))
    res.recipe = {**recipe.model_dump(mode="json"),
                  "history": [{"outputs": h.outputs, "hidden": h.hidden, "epochs": h.epochs, "val_max": h.val_max,
                               "val_mae": h.val_mae, "chosen_fit": h.chosen_fit} for h in hists],
                  "warm_start": None if warm is None else {"name": warm.card.name,
                                                           "onnx_sha256": warm.card.onnx.sha256 if warm.card.onnx else ""}}
    return res


def base_weights(sens: np.ndarray, sens_unit, weight_floor: float) -> np.ndarray:
    """Base residual weights of a recipe net, ``max(sens, weight_floor * sens_unit)`` per output column: the
    physical error per unit of scaled output (``|dR/du|`` times the output factor), floored."""
    return np.maximum(sens, weight_floor * np.asarray(sens_unit, np.float64).reshape(1, -1))


def _retarget_inits(inits: list, recipe, Z: np.ndarray, T: np.ndarray, sens: np.ndarray, unit: np.ndarray,
                    rows: np.ndarray, old: Affine, new: Affine) -> list:
    """Warm-start nets whose outputs' scaling changed get their output layer re-targeted to ``T`` (new
    scaling) on the training ``rows`` (:func:`nanosep.surrogates.retarget.retarget_output_layer`, weights
    :func:`base_weights`, as :func:`train_output_net`); the others are returned as they are."""
    from nanosep.surrogates.retarget import retarget_output_layer

    same = (np.isclose(old.offset_array, new.offset_array, rtol=0, atol=1e-12)
            & np.isclose(old.factor_array, new.factor_array, rtol=0, atol=1e-12))
    out, col = [], 0
    for init, net in zip(inits, recipe.nets):
        cols = list(range(col, col + len(net.outputs)))
        col += len(net.outputs)
        if all(same[cols]):
            out.append(init)
            continue
        w = base_weights(sens[np.ix_(rows, cols)], unit[cols], net.weight_floor)
        out.append(retarget_output_layer(init, Z[rows], T[np.ix_(rows, cols)], w))
        log.info("net %s: output scaling changed (offset %s -> %s, factor %s -> %s), output layer re-targeted",
                 net.outputs, [old.offset[c] for c in cols], [new.offset[c] for c in cols],
                 [old.factor[c] for c in cols], [new.factor[c] for c in cols])
    return out


def recipe_data_dirs(case, data_dir: str | Path, extra_data: Sequence[str | Path] | None = None) -> list[Path]:
    """The dataset folders of a recipe training: ``data_dir`` and, unless ``extra_data`` names them,
    ``<data_dir>_<name>`` for every ``training.extra_designs`` entry (the default ``nanosep sample
    --extra`` folders). A missing folder raises :class:`InvalidInputError` naming it."""
    data_dir = Path(data_dir)
    if extra_data:
        extra = [Path(p) for p in extra_data]
    else:
        names = [d.name for d in case.training.extra_designs] if case.training is not None else []
        extra = [data_dir.with_name(f"{data_dir.name}_{n}") for n in names]
    dirs = [data_dir, *extra]
    for d in dirs:
        if not (d / "manifest.json").exists():
            raise InvalidInputError(f"dataset folder {d} not found (run `nanosep sample` for it first)")
    return dirs


def train_recipe_case(case_path: str | Path, data_dir: str | Path, out: str | Path, *,
                      extra_data: Sequence[str | Path] | None = None, warm_start: str | Path | None = None,
                      progress: Progress | None = None) -> tuple[TrainingResult, Path]:
    """``nanosep train --kind recipe``: pool the main and extra datasets, :func:`train_recipe`, write the model dir."""
    from nanosep.surrogates.dataset import XY, load_xy
    from nanosep.surrogates.domain import load_surrogate_case

    case = load_surrogate_case(case_path)
    dirs = recipe_data_dirs(case, data_dir, extra_data)
    parts = [load_xy(d, case.input_names, case.output_names) for d in dirs]
    X = np.vstack([p.X for p in parts])
    Y = np.vstack([p.Y for p in parts])
    log.info("%s: %d converged cases from %d datasets (%d failed dropped)", case.name, len(X), len(dirs),
             sum(p.n_failed_dropped for p in parts))
    warm = warm_start_from_card(warm_start) if warm_start is not None else None
    result = train_recipe(X, Y, case, warm=warm, progress=progress, checkpoint_dir=Path(out) / "checkpoints")
    xy = XY(X=X, Y=Y, case_id=np.arange(len(X)), input_names=tuple(case.input_names),
            output_names=tuple(case.output_names), n_failed_dropped=sum(p.n_failed_dropped for p in parts),
            manifest_hash=parts[0].manifest_hash)
    result.recipe["datasets"] = [{"dir": str(d), "manifest_hash": p.manifest_hash, "n": len(p.X)}
                                 for d, p in zip(dirs, parts)]
    card_path = save_model_dir(Path(out), case, result, xy)
    return result, card_path


def n_recipe_fits(case) -> int:
    """Progress steps of :func:`train_recipe` (one per fit of every net)."""
    return sum(1 + n.rounds for n in case.training.nets) if case.training is not None else 0
