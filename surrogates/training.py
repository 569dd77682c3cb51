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
from nanosep.surrogates.scaling import Affine
from torch import nn
from torch.func import functional_call, jacfwd

from nanosep.errors import InvalidInputError

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
    from nanosep.surrogates.scaling import (
        fit_input_scaling,
        fit_output_scaling,
        output_forward,
        scale_inputs,
        scale_outputs,
        unscale_outputs,
    )

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
                              cv_mse=[] if cv is None else cv["cv_mse"].tolist()),
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
    from nanosep.surrogates.scaling import scale_inputs, unscale_outputs

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
                  seed: int, output_activation: str, max_hidden: int) -> int:
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
    torch.set_num_threads(1)
    try:
        with RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console) as bar:
            task = bar.add_task("training", total=n_fits(kind, h, folds, restarts, len(sizes)))

            def step(desc: str) -> None:
                bar.update(task, advance=1, description=desc)

            result, card_path = train_case(case, data, out, kind=kind, hidden=h, folds=folds, restarts=restarts,
                                           seed=seed, cv_sizes=sizes, output_activation=output_activation,  # type: ignore[arg-type]
                                           progress=step)
    except InvalidInputError as exc:
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
