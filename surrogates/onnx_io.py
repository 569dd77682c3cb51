"""ONNX export of surrogate MLPs with an operator whitelist; loading and checking against the card.

The ONNX graph maps scaled inputs ``x_scaled`` to scaled outputs ``y_scaled``
(float64) and may contain only the operators in :data:`ALLOWED_OPS`; the log
transform and the affine scalings live in the card (DESIGN.md). Export uses
torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, opset 18,
needs onnxscript): for ``nn.Sequential`` of ``Linear``/``Tanh`` it writes a
clean ``Gemm -> Tanh -> Gemm`` chain, as does the deprecated TorchScript
exporter, which we avoid because torch 2.9+ warns it will be removed.

:func:`dense_layers` reads the graph back as ``(W, b, activation)`` triples in
float64; the OMLT and CasADi front ends both build on it, so all consumers
see exactly the weights stored in the file.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from nanosep.surrogates.card import CARD_SUFFIX, ModelCard, sha256_of
from nanosep.surrogates.scaling import scale_inputs, unscale_outputs

from nanosep.errors import InvalidInputError, NanosepError

log = logging.getLogger(__name__)

#: operators a surrogate graph may contain (Identity/Constant are harmless exporter by-products)
ALLOWED_OPS = frozenset({"Gemm", "MatMul", "Add", "Tanh", "Sigmoid", "Softplus", "Relu", "Identity", "Constant"})
ACTIVATION_OPS = {"Tanh": "tanh", "Sigmoid": "sigmoid", "Softplus": "softplus", "Relu": "relu"}
OPSET = 18
DomainPolicy = Literal["raise", "warn", "clip"]


class SurrogateFileError(NanosepError):
    """A surrogate ONNX file is missing, corrupt or fails the ONNX checker."""


class UnsupportedOperatorError(SurrogateFileError):
    """The ONNX graph contains an operator outside :data:`ALLOWED_OPS`; the message names it."""


class SurrogateMismatchError(SurrogateFileError):
    """The ONNX file does not match its model card (sha256, sizes or tensor names)."""


class OutOfDomainError(InvalidInputError):
    """A surrogate input lies outside the declared domain; the message names the input and value."""


class MissingInputError(InvalidInputError):
    """A surrogate input the card needs was not given; the message names it (and the ion)."""


# --------------------------------------------------------------------------- export
def check_operators(model, source: str = "ONNX graph") -> None:
    """Raise :class:`UnsupportedOperatorError` naming any operator outside the whitelist."""
    bad = sorted({n.op_type for n in model.graph.node} - ALLOWED_OPS)
    if bad:
        raise UnsupportedOperatorError(
            f"{source} contains unsupported operator(s) {', '.join(bad)}; surrogates may only use "
            f"{', '.join(sorted(ALLOWED_OPS))}")


def export_onnx(model, n_inputs: int, path: str | Path, *, input_name: str = "x_scaled",
                output_name: str = "y_scaled", opset: int = OPSET) -> str:
    """Export a float64 torch MLP (scaled in -> scaled out) to ``path``; returns its sha256.

    The batch dimension is dynamic. The written graph is checked with
    ``onnx.checker`` and the operator whitelist; a refused file is deleted.
    """
    import onnx
    import torch

    path = Path(path)
    model = model.double().eval()
    x = torch.zeros(2, n_inputs, dtype=torch.float64)
    batch = torch.export.Dim("batch", min=1)
    tmp = path.with_suffix(".tmp.onnx")
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(tmp), dynamo=True, opset_version=opset, input_names=[input_name],
                          output_names=[output_name], dynamic_shapes=({0: batch},), verbose=False,
                          external_data=False)
    try:
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto, full_check=True)
        check_operators(proto, f"exported graph of {path.name}")
        if proto.graph.input[0].type.tensor_type.elem_type != onnx.TensorProto.DOUBLE:
            raise SurrogateFileError(f"exported graph of {path.name} is not float64")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return sha256_of(path)


# --------------------------------------------------------------------------- reading the graph
@dataclass(frozen=True)
class DenseLayer:
    """``y = act(x @ W + b)`` with ``W`` of shape (n_in, n_out), float64."""

    W: np.ndarray
    b: np.ndarray
    activation: str  # "linear" | "tanh" | "sigmoid" | "softplus" | "relu"


def dense_layers(model) -> list[DenseLayer]:
    """Walk a chain graph (Gemm | MatMul[+Add]) [activation] ... into float64 dense layers.

    Only straight chains from the graph input to its output are accepted;
    anything else raises :class:`UnsupportedOperatorError` naming the node.
    """
    from onnx import numpy_helper

    check_operators(model)
    init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    consts = {}
    for n in model.graph.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t).astype(np.float64)
    init.update(consts)
    nodes = [n for n in model.graph.node if n.op_type != "Constant"]
    layers: list[DenseLayer] = []
    current = model.graph.input[0].name
    pending: tuple[np.ndarray, np.ndarray] | None = None

    def flush(act: str = "linear") -> None:
        nonlocal pending
        if pending is not None:
            layers.append(DenseLayer(pending[0], pending[1], act))
            pending = None

    for n in nodes:
        ins = list(n.input)
        if current not in ins:
            raise UnsupportedOperatorError(f"node {n.name!r} ({n.op_type}) does not continue the chain from "
                                           f"{current!r}; only sequential graphs are supported")
        other = [i for i in ins if i != current]
        if n.op_type == "Gemm":
            attrs = {a.name: (a.f if a.type == a.FLOAT else a.i) for a in n.attribute}
            if attrs.get("transA", 0):
                raise UnsupportedOperatorError(f"Gemm node {n.name!r} with transA=1 is not supported")
            flush()
            W = init[ins[1]]
            W = W.T if attrs.get("transB", 0) else W
            b = init[ins[2]] if len(ins) > 2 else np.zeros(W.shape[1])
            pending = (float(attrs.get("alpha", 1.0)) * W, float(attrs.get("beta", 1.0)) * np.broadcast_to(b, (W.shape[1],)).copy())
        elif n.op_type == "MatMul":
            flush()
            W = init[other[0]]
            pending = (W, np.zeros(W.shape[1]))
        elif n.op_type == "Add":
            if pending is None:
                raise UnsupportedOperatorError(f"Add node {n.name!r} does not follow a MatMul/Gemm")
            pending = (pending[0], pending[1] + np.broadcast_to(init[other[0]], pending[1].shape))
        elif n.op_type in ACTIVATION_OPS:
            if pending is None:
                raise UnsupportedOperatorError(f"activation {n.op_type} node {n.name!r} does not follow a dense layer")
            flush(ACTIVATION_OPS[n.op_type])
        elif n.op_type == "Identity":
            pass
        current = n.output[0]
    flush()
    if current != model.graph.output[0].name:
        raise UnsupportedOperatorError(f"graph output {model.graph.output[0].name!r} is not the end of the chain")
    return layers


_NUMPY_ACT = {
    "linear": lambda a: a, "tanh": np.tanh, "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "softplus": lambda a: np.logaddexp(0.0, a), "relu": lambda a: np.maximum(a, 0.0),
}


def forward_numpy(layers: Sequence[DenseLayer], z: np.ndarray) -> np.ndarray:
    """Evaluate dense layers in numpy float64 (reference for the other front ends)."""
    a = np.asarray(z, dtype=np.float64)
    for L in layers:
        a = _NUMPY_ACT[L.activation](a @ L.W + L.b)
    return a


# --------------------------------------------------------------------------- loading
def card_path_for(onnx_path: str | Path) -> Path:
    p = Path(onnx_path)
    return p.with_name(p.name.removesuffix(".onnx") + CARD_SUFFIX)


class Surrogate:
    """A checked surrogate: card + ONNX model + onnxruntime session, in physical units."""

    def __init__(self, card: ModelCard, onnx_path: Path, model) -> None:
        self.card = card
        self.onnx_path = onnx_path
        self.model = model
        self._session = None

    @property
    def session(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(self.onnx_path), opts, providers=["CPUExecutionProvider"])
        return self._session

    def layers(self) -> list[DenseLayer]:
        return dense_layers(self.model)

    # ---- inputs
    def input_array(self, x) -> np.ndarray:
        """Physical inputs as an (N, n_in) float64 array in card order.

        ``x`` may be an array with the card's columns in order, or a DataFrame
        / mapping with the card's input names as keys (extra keys ignored).
        """
        names = self.card.input_names
        if isinstance(x, (pd.DataFrame, Mapping)):
            missing = [n for n in names if n not in x]
            if missing:
                descr = [f"{n} (feed concentration of ion {n[2:-7]})" if n.startswith("c_") and n.endswith("_mol_m3")
                         else n for n in missing]
                raise MissingInputError(f"surrogate {self.card.name!r} needs input(s) {', '.join(descr)}; "
                                        f"given: {', '.join(map(str, x.keys()))}")
            cols = [np.atleast_1d(np.asarray(x[n], dtype=np.float64)) for n in names]
            return np.column_stack(np.broadcast_arrays(*cols))
        a = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if a.shape[1] != len(names):
            raise MissingInputError(f"surrogate {self.card.name!r} takes {len(names)} inputs ({', '.join(names)}), "
                                    f"got an array with {a.shape[1]} columns")
        return a

    def check_domain(self, X: np.ndarray, policy: DomainPolicy = "raise") -> np.ndarray:
        """Apply the out-of-domain policy: raise (default), warn (and extrapolate) or clip to the domain."""
        if policy not in ("raise", "warn", "clip"):
            raise InvalidInputError(f"unknown domain policy {policy!r}; choose raise, warn or clip")
        if not np.isfinite(X).all():
            r, c = np.argwhere(~np.isfinite(X))[0]
            raise InvalidInputError(f"input {self.card.input_names[c]} is not finite in row {r}: {float(X[r, c])!r}")
        lo = np.array([v.low for v in self.card.inputs])
        hi = np.array([v.high for v in self.card.inputs])
        tol = 1e-9 * (hi - lo)
        bad = (X < lo - tol) | (X > hi + tol)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            v = self.card.inputs[c]
            msg = (f"input {v.name} = {float(X[r, c])!r} {v.unit} (row {r}) is outside the domain [{v.low:g}, {v.high:g}] "
                   f"of surrogate {self.card.name!r} ({int(bad.any(axis=1).sum())} row(s) out of domain)")
            if policy == "raise":
                raise OutOfDomainError(msg)
            if policy == "warn":
                warnings.warn(msg, stacklevel=3)
                log.warning(msg)
            else:
                X = np.clip(X, lo, hi)
        return X

    def predict_scaled(self, z: np.ndarray) -> np.ndarray:
        return self.session.run([self.card.onnx.output_name],
                                {self.card.onnx.input_name: np.ascontiguousarray(z, dtype=np.float64)})[0]

    def predict(self, x, policy: DomainPolicy = "raise") -> np.ndarray:
        """Physical outputs (N, n_out) for physical inputs, via onnxruntime."""
        X = self.check_domain(self.input_array(x), policy)
        z = scale_inputs(X, self.card.input_scaling, self.card.input_scales)  # type: ignore[arg-type]
        return unscale_outputs(self.predict_scaled(z), self.card.output_scaling, self.card.output_transforms)

    def predict_frame(self, x, policy: DomainPolicy = "raise") -> pd.DataFrame:
        return pd.DataFrame(self.predict(x, policy), columns=self.card.output_names)


def _io_size(value_info) -> int | None:
    dims = value_info.type.tensor_type.shape.dim
    return int(dims[-1].dim_value) if dims and dims[-1].dim_value > 0 else None


def load_surrogate(card_path: str | Path) -> Surrogate:
    """Load ``<name>.card.json`` and its ONNX file, checking everything that can be checked.

    Raises :class:`SurrogateFileError` (missing or corrupt file, ONNX checker
    failure), :class:`UnsupportedOperatorError` (operator outside the
    whitelist) or :class:`SurrogateMismatchError` (sha256, tensor names, input
    or output sizes differ from the card), each naming the problem.
    """
    import onnx

    card_path = Path(card_path)
    card = ModelCard.load(card_path)
    if card.onnx is None:
        raise SurrogateFileError(f"card {card_path} ({card.kind}) has no ONNX file; load its weights "
                                 f"({card.weights.file if card.weights else '?'}) with the module that trained it")
    onnx_path = card_path.parent / card.onnx.file
    if not onnx_path.exists():
        raise SurrogateFileError(f"ONNX file {onnx_path} named by card {card_path} does not exist")
    if card.onnx.sha256:
        digest = sha256_of(onnx_path)
        if digest != card.onnx.sha256:
            raise SurrogateMismatchError(f"sha256 of {onnx_path.name} is {digest[:12]}..., the card {card_path.name} "
                                         f"expects {card.onnx.sha256[:12]}... (file changed or corrupt)")
    else:
        log.warning("card %s has no ONNX sha256; the file cannot be verified", card_path)
    try:
        model = onnx.load(str(onnx_path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, ...
        raise SurrogateFileError(f"{onnx_path} is not a valid ONNX model: {exc}") from exc
    check_operators(model, str(onnx_path))
    g = model.graph
    if len(g.input) != 1 or len(g.output) != 1:
        raise SurrogateMismatchError(f"{onnx_path.name} has {len(g.input)} inputs and {len(g.output)} outputs; "
                                     "a surrogate has one of each")
    checks = [("input name", g.input[0].name, card.onnx.input_name), ("output name", g.output[0].name, card.onnx.output_name),
              ("input size", _io_size(g.input[0]), len(card.inputs)), ("output size", _io_size(g.output[0]), len(card.outputs))]
    for what, got, want in checks:
        if got != want:
            raise SurrogateMismatchError(f"{onnx_path.name}: {what} is {got!r}, card {card_path.name} says {want!r}")
    layers = dense_layers(model)
    if layers[0].W.shape[0] != len(card.inputs) or layers[-1].W.shape[1] != len(card.outputs):
        raise SurrogateMismatchError(f"{onnx_path.name}: weights map {layers[0].W.shape[0]} -> {layers[-1].W.shape[1]}, "
                                     f"card declares {len(card.inputs)} -> {len(card.outputs)}")
    return Surrogate(card, onnx_path, model)



# --------------------------------------------------------------------------- the `nanosep export` pipeline
def random_domain_points(card: ModelCard, n: int, seed: int = 0) -> np.ndarray:
    """``n`` points of the declared domain, uniform in each input's transform ``t`` (log-uniform
    for log inputs, uniform in log10(x + offset) for log_offset inputs, in log10(-x) for log_neg
    inputs), physical units."""
    rng = np.random.default_rng(seed)
    u = rng.random((n, len(card.inputs)))
    cols = []
    for j, v in enumerate(card.inputs):
        sc = v.transform
        a, b = sc.forward(v.low), sc.forward(v.high)
        cols.append(np.clip(sc.inverse(a + (b - a) * u[:, j]), v.low, v.high))
    return np.column_stack(cols)


def torch_predict(model, card: ModelCard, X: np.ndarray) -> np.ndarray:
    """Physical outputs of the torch model (the reference for export checks)."""
    import torch

    z = scale_inputs(X, card.input_scaling, card.input_scales)  # type: ignore[arg-type]
    with torch.no_grad():
        return unscale_outputs(model(torch.as_tensor(z, dtype=torch.float64)).numpy(), card.output_scaling,
                               card.output_transforms)


def export_model_dir(model_dir: str | Path, out: str | Path, *, n_check: int = 1000, atol: float = 1e-10) -> Path:
    """Export a trained model directory to ``out/<name>.onnx`` + card (with sha256).

    The export is checked by reloading it with :func:`load_surrogate` and
    comparing onnxruntime with torch on ``n_check`` random in-domain points;
    a difference above ``atol`` raises :class:`SurrogateMismatchError`.
    Returns the card path.
    """
    from nanosep.surrogates.training import load_model_dir

    model, card, _ = load_model_dir(model_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / f"{card.name}.onnx"
    digest = export_onnx(model, len(card.inputs), onnx_path, input_name=card.onnx.input_name,
                         output_name=card.onnx.output_name)
    card = card.model_copy(update={"onnx": card.onnx.model_copy(update={"file": onnx_path.name, "sha256": digest,
                                                                          "opset": OPSET})})
    card_path = card.save(out / f"{card.name}{CARD_SUFFIX}")
    sur = load_surrogate(card_path)
    X = random_domain_points(card, n_check)
    diff = float(np.max(np.abs(sur.predict(X) - torch_predict(model, card, X))))
    if not diff <= atol:
        raise SurrogateMismatchError(f"onnxruntime and torch differ by {diff:.3e} > {atol:g} on {onnx_path.name}")
    log.info("exported %s (sha256 %s...); onnxruntime vs torch max |diff| %.2e", onnx_path, digest[:12], diff)
    return card_path


def run_export_cli(model_dir: Path, out: Path) -> int:
    """``nanosep export``: returns an exit code."""
    from rich.console import Console

    console = Console()
    try:
        card_path = export_model_dir(model_dir, out)
    except (InvalidInputError, SurrogateFileError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    card = ModelCard.load(card_path)
    console.print(f"wrote {card_path.parent / card.onnx.file} and {card_path.name} (sha256 {card.onnx.sha256[:12]}...); "
                  "onnxruntime agrees with torch")
    return 0


def shipped_card(name: str) -> Path:
    """Path of a shipped model card (``surrogates/shipped/<name>.card.json``, package data)."""
    from importlib.resources import files

    path = Path(str(files("nanosep.surrogates") / "shipped" / f"{name}{CARD_SUFFIX}"))
    if not path.exists():
        avail = sorted(p.name.removesuffix(CARD_SUFFIX) for p in path.parent.glob(f"*{CARD_SUFFIX}")) \
            if path.parent.exists() else []
        raise InvalidInputError(f"no shipped surrogate {name!r}; shipped: {', '.join(avail) or 'none'}")
    return path


def load_shipped(name: str) -> Surrogate:
    """:func:`load_surrogate` of a shipped model, e.g. ``load_shipped("seed002_na2so4_element")``."""
    return load_surrogate(shipped_card(name))
