"""Physics-constrained neural ODE for multi-ion rejection (seed 001, Rehman & Lienhard).

The hidden state ``h`` evolves over the normalized volume flux ``tau = J_v / J_ref``
(seed 001 eq. 1)::

    dh/dtau = P_w f_theta(mask * h, phi(tau), feed),      h(0) = h_feed

* ``f_theta``: five linear layers with tanh after each but the last (seed 001 sec. 2),
  input = the masked state, polynomial positional encodings ``phi(tau) = (tau, ..., tau^p)``
  and the feed it is conditioned on (log10 of every present ion's feed concentration in
  mol/m3, 0 for absent ions, and the 0/1 presence mask).
* ``P_w v = v - w (w.v)/(w.w)``: the orthogonal projection that removes the charge
  component of the vector field (seed 001 eq. 2, sec. 2.1), restricted to the ions present
  in the mixture (absent ions have ``w = 0`` and a masked, i.e. zero, vector field, so they
  stay exactly zero). Then ``w.h`` is conserved exactly along the trajectory.
* The ODE is integrated with Dormand-Prince 5(4) (``dopri5``) and differentiated with the
  continuous adjoint (``torchdiffeq.odeint_adjoint``), as in seed 001.

Two state coordinates (``NodeConfig.state``):

* ``"transmission"`` (default): ``h_i = c_perm,i / c_feed,i = 1 - R_i``, ``h(0) = 1`` for every
  present ion (at zero flux the permeate equals the feed, the J_v -> 0 limit of hindered
  Nernst-Planck transport), ``w = z * c_feed`` so that ``w.h = z.c_perm`` = 0 is conserved.
  This is the seed's projection applied in per-ion scaled coordinates (a departure: the
  seed projects raw concentrations with ``w = z``). Reason: trace ions (0.2 mol/m3 next to
  10-20 mol/m3) then have O(1) states and targets, and the projection only moves an ion in
  proportion to its share of the charge, instead of pushing trace ions by the same amount
  as the dominant ones.
* ``"concentration"``: the seed as written, ``h = c_perm / c_scale`` with one scalar
  ``c_scale = sum_i |z_i| c_feed,i / 2`` per mixture (a scalar keeps ``z.h = 0`` equivalent to
  ``z.c = 0``), ``h(0) = c_feed / c_scale``, ``w = z`` on present ions.

Losses (seed 001 eqs. 4-5) are mean squared errors on rejection over the measured or
simulated (ion, flux) points; in the transmission state this is exactly the MSE on ``h``.
Fine-tuning draws the targets from N(R, sd^2) each step (seed 001 eq. 5).
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from nanosep.errors import InvalidInputError
from nanosep.surrogates.card import CARD_SUFFIX, ModelCard, sha256_of
from nanosep.ions import IonDatabase
from nanosep.measured import feed_column
from nanosep.units import lmh_to_m_s

log = logging.getLogger(__name__)

State = Literal["transmission", "concentration"]
DTYPE = torch.float64
WEIGHTS_SUFFIX = ".pt"
#: feed range [mol/m3] written to a card when the caller gives no training envelope
NOMINAL_FEED_RANGE_MOL_M3 = (1e-3, 1e3)


@dataclass(frozen=True)
class NodeConfig:
    """Architecture and solver settings of :class:`NeuralODE` (all go into the model card).

    ions, charges: species order of the state vector (d = len(ions)) and valences.
    hidden: width of the hidden layers; layers: number of linear layers (seed 001: 5).
    poly_degree: degree p of the positional encoding (tau, ..., tau^p).
    field_gain: constant factor on the network output (the transmission of NF membranes
        falls by O(1) within tau ~ 0.1, so a gain ~10 lets a default-initialized net reach
        such slopes; equivalent to a finer time unit without blowing up tau^p).
    flux_ref_L_m2_h: J_ref of tau = J_v / J_ref (216 L m-2 h-1 = 60 um/s).
    state: ``"transmission"`` or ``"concentration"`` (module docstring).
    rtol, atol, method: torchdiffeq solver settings; adjoint: use ``odeint_adjoint``.
    seed: initialization seed of the weights.
    """

    ions: tuple[str, ...]
    charges: tuple[int, ...]
    hidden: int = 64
    layers: int = 5
    poly_degree: int = 3
    field_gain: float = 1.0
    flux_ref_L_m2_h: float = 216.0
    state: State = "transmission"
    rtol: float = 1e-6
    atol: float = 1e-8
    method: str = "dopri5"
    adjoint: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ions", tuple(self.ions))
        object.__setattr__(self, "charges", tuple(int(z) for z in self.charges))
        if len(self.ions) != len(self.charges) or not self.ions:
            raise InvalidInputError(f"ions {self.ions} and charges {self.charges} must be non-empty, same length")
        if self.layers < 2 or self.hidden < 1 or self.poly_degree < 1:
            raise InvalidInputError(f"layers={self.layers} (>= 2), hidden={self.hidden}, "
                                    f"poly_degree={self.poly_degree} (>= 1) out of range")
        if self.state not in ("transmission", "concentration"):
            raise InvalidInputError(f"state={self.state!r}: choose 'transmission' or 'concentration'")
        if not self.flux_ref_L_m2_h > 0:
            raise InvalidInputError(f"flux_ref_L_m2_h={self.flux_ref_L_m2_h!r} must be positive")

    @classmethod
    def for_ions(cls, ions: Sequence[str], ion_db: IonDatabase | None = None, **kw) -> NodeConfig:
        """Config with canonical names and valences from the ion database."""
        db = ion_db or IonDatabase.default()
        names = [db.get(i).name for i in ions]
        return cls(ions=tuple(names), charges=tuple(db.get(i).charge for i in names), **kw)


def poly_encoding(tau: torch.Tensor, degree: int) -> torch.Tensor:
    """Polynomial positional encoding (tau, tau^2, ..., tau^degree) along a new last axis."""
    return torch.stack([tau**k for k in range(1, degree + 1)], dim=-1)


def project_charge(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Remove the component of ``v`` along ``w`` (rows): ``v - w (w.v)/(w.w)``; rows with w = 0 pass.

    Seed 001 sec. 2.1 (h_perp): afterwards ``w.v = 0`` to rounding, so ``w.h`` is an invariant
    of ``dh/dtau = v``.
    """
    ww = (w * w).sum(-1, keepdim=True)
    coef = torch.where(ww > 0, (w * v).sum(-1, keepdim=True) / torch.where(ww > 0, ww, 1.0), 0.0)
    return v - coef * w


class ChargeConservingField(nn.Module):
    """The vector field ``P_w f_theta`` of one batch of mixtures (set by :meth:`condition`)."""

    def __init__(self, cfg: NodeConfig) -> None:
        super().__init__()
        d = len(cfg.ions)
        self.degree = cfg.poly_degree
        self.gain = cfg.field_gain
        gen = torch.random.get_rng_state()
        torch.manual_seed(cfg.seed)
        sizes = [d + cfg.poly_degree + 2 * d] + [cfg.hidden] * (cfg.layers - 1) + [d]
        mods: list[nn.Module] = []
        for k, (a, b) in enumerate(itertools.pairwise(sizes)):
            mods.append(nn.Linear(a, b))
            if k < len(sizes) - 2:
                mods.append(nn.Tanh())
        torch.random.set_rng_state(gen)
        self.net = nn.Sequential(*mods).to(DTYPE)
        self.mask = torch.zeros(0, d, dtype=DTYPE)
        self.features = torch.zeros(0, 2 * d, dtype=DTYPE)
        self.w = torch.zeros(0, d, dtype=DTYPE)
        self.nfe = 0

    def condition(self, mask: torch.Tensor, features: torch.Tensor, w: torch.Tensor) -> None:
        """Set the mixtures: presence mask (B, d), feed features (B, 2d), projection vectors (B, d)."""
        self.mask, self.features, self.w = mask, features, w * mask

    def forward(self, tau: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        enc = poly_encoding(tau.to(DTYPE), self.degree).expand(h.shape[0], self.degree)
        raw = self.gain * self.net(torch.cat([h * self.mask, enc, self.features], dim=-1)) * self.mask
        return project_charge(raw, self.w)


class NeuralODE(nn.Module):
    """Neural ODE from feed composition and flux to permeate composition (module docstring).

    Concentrations are mol/m3, fluxes L m-2 h-1; all tensors are float64.
    """

    def __init__(self, cfg: NodeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.field = ChargeConservingField(cfg)
        self.register_buffer("z", torch.tensor(cfg.charges, dtype=DTYPE))

    # -- conditioning -----------------------------------------------------------------
    def _setup(self, c_feed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition the field on feeds (B, d); returns (h0, state-to-concentration scale)."""
        if c_feed.ndim != 2 or c_feed.shape[1] != len(self.cfg.ions):
            raise InvalidInputError(f"c_feed must be (B, {len(self.cfg.ions)}) for ions {self.cfg.ions}, "
                                    f"got shape {tuple(c_feed.shape)}")
        if not torch.isfinite(c_feed).all() or (c_feed < 0).any():
            raise InvalidInputError(f"c_feed must be finite and >= 0, got {c_feed[(c_feed < 0) | ~torch.isfinite(c_feed)][:5].tolist()}")
        mask = (c_feed > 0).to(DTYPE)
        logc = torch.where(c_feed > 0, torch.log10(torch.where(c_feed > 0, c_feed, 1.0)), 0.0)
        feats = torch.cat([logc, mask], dim=-1)
        if self.cfg.state == "transmission":
            h0, scale, w = mask.clone(), c_feed, self.z * c_feed
        else:
            cs = 0.5 * (c_feed * self.z.abs()).sum(-1, keepdim=True)
            cs = torch.where(cs > 0, cs, c_feed.sum(-1, keepdim=True).clamp_min(1.0))
            h0, scale, w = c_feed / cs, cs.expand_as(c_feed), self.z.expand_as(c_feed)
        self.field.condition(mask, feats, w)
        return h0, scale

    def states(self, c_feed: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """Hidden states (T, B, d) at the increasing normalized fluxes ``tau`` (T,), tau[0] = 0."""
        h0, _ = self._setup(c_feed)
        return self._integrate(h0, tau)

    def _integrate(self, h0: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        if tau.numel() == 1:
            return h0.unsqueeze(0)
        kw = {"rtol": self.cfg.rtol, "atol": self.cfg.atol, "method": self.cfg.method}
        if self.cfg.adjoint and torch.is_grad_enabled():
            return odeint_adjoint(self.field, h0, tau, adjoint_params=tuple(self.field.parameters()), **kw)
        return odeint(self.field, h0, tau, **kw)

    def permeate_at(self, c_feed: torch.Tensor, flux_L_m2_h: torch.Tensor, traj: torch.Tensor) -> torch.Tensor:
        """Permeate concentrations (N, d), mol/m3, of N queries: mixture ``traj[n]`` at ``flux[n]``.

        All B mixtures are integrated together once, to the union of the query fluxes.
        """
        flux = torch.as_tensor(flux_L_m2_h, dtype=DTYPE)
        if (flux < 0).any() or not torch.isfinite(flux).all():
            raise InvalidInputError(f"flux_L_m2_h must be finite and >= 0, got {flux[(flux < 0) | ~torch.isfinite(flux)][:5].tolist()}")
        tau_q = flux / self.cfg.flux_ref_L_m2_h
        tau, inv = torch.unique(torch.cat([torch.zeros(1, dtype=DTYPE), tau_q]), sorted=True, return_inverse=True)
        h0, scale = self._setup(c_feed)
        sol = self._integrate(h0, tau)                              # (T, B, d)
        traj = torch.as_tensor(traj, dtype=torch.long)
        h = sol[inv[1:], traj]                                      # (N, d)
        return h * scale[traj] * self.field.mask[traj]

    def rejection_at(self, c_feed: torch.Tensor, flux_L_m2_h: torch.Tensor, traj: torch.Tensor) -> torch.Tensor:
        """Rejection 1 - c_perm/c_feed (N, d); NaN for ions absent from the mixture."""
        cp = self.permeate_at(c_feed, flux_L_m2_h, traj)
        cf = c_feed[torch.as_tensor(traj, dtype=torch.long)]
        return torch.where(cf > 0, 1.0 - cp / torch.where(cf > 0, cf, 1.0), torch.nan)

    def forward(self, c_feed: torch.Tensor, flux_L_m2_h: torch.Tensor) -> torch.Tensor:
        """Permeate (B, d), mol/m3, of feed row b at flux b (one trajectory per row)."""
        return self.permeate_at(c_feed, flux_L_m2_h, torch.arange(c_feed.shape[0]))

    def predict_rejection(self, c_feed_mol_m3: np.ndarray, flux_L_m2_h: np.ndarray) -> np.ndarray:
        """NumPy convenience: rejection (B, d) for feeds (B, d) or (d,) and fluxes (B,)."""
        c = torch.as_tensor(np.atleast_2d(np.array(c_feed_mol_m3, dtype=float)), dtype=DTYPE)
        f = torch.as_tensor(np.atleast_1d(np.array(flux_L_m2_h, dtype=float)), dtype=DTYPE)
        if c.shape[0] == 1 and f.shape[0] > 1:
            c = c.expand(f.shape[0], -1)
        with torch.no_grad():
            return self.rejection_at(c, f, torch.arange(c.shape[0])).numpy()

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- persistence ----------------------------------------------------------------
    def save(self, stem: str | Path, card_extra: dict | None = None) -> Path:
        """Write ``<stem>.pt`` (state dict) and ``<stem>.card.json``; returns the card path."""
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        wpath = stem.with_name(stem.name + WEIGHTS_SUFFIX)
        tmp = wpath.with_name(wpath.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(wpath)
        card = model_card(self, stem.name, wpath, **(card_extra or {}))
        return ModelCard.model_validate(card).save(stem.with_name(stem.name + CARD_SUFFIX))

    @classmethod
    def load(cls, card_path: str | Path) -> NeuralODE:
        """Rebuild a model from its card and weights; checks the weights' sha256."""
        card_path = Path(card_path)
        card = ModelCard.load(card_path)
        if card.kind != "neural_ode" or card.weights is None:
            raise InvalidInputError(f"{card_path}: kind={card.kind!r}, expected 'neural_ode' with a weights file")
        wpath = card_path.parent / card.weights.file
        if sha256_of(wpath) != card.weights.sha256:
            raise InvalidInputError(f"{wpath}: sha256 does not match the card {card_path}")
        model = cls(NodeConfig(**card.architecture["config"]))
        model.load_state_dict(torch.load(wpath, weights_only=True))
        return model


def model_card(model: NeuralODE, name: str, weights_path: Path, *, feed_bounds_mol_m3: dict | None = None,
               flux_bounds_L_m2_h: tuple[float, float] = (0.0, 216.0), data: dict | None = None,
               metrics: dict | None = None, training: dict | None = None,
               description: str = "") -> dict:
    """The model card (DESIGN.md fields; kind ``"neural_ode"``, no ONNX file: ``onnx`` is null and
    ``weights`` names the torch state dict). Inputs: flux (linear, scaled by J_ref) and the feed
    concentrations (log10). Outputs: rejection of every ion (1 - state in transmission mode)."""
    from datetime import datetime

    from nanosep.surrogates.card import nanosep_version

    cfg = model.cfg
    fb = feed_bounds_mol_m3 or {}
    inputs = [{"name": "flux_L_m2_h", "unit": "L/(m2 h)", "low": flux_bounds_L_m2_h[0],
               "high": flux_bounds_L_m2_h[1], "scale": "linear"}]
    # absent ions are masked (c = 0 allowed); the declared range is the present-ion envelope,
    # NOMINAL_FEED_RANGE_MOL_M3 where the caller gives none
    inputs += [{"name": f"c_{i}_mol_m3", "unit": "mol/m3", "low": fb.get(i, NOMINAL_FEED_RANGE_MOL_M3)[0],
                "high": fb.get(i, NOMINAL_FEED_RANGE_MOL_M3)[1], "scale": "log"} for i in cfg.ions]
    d = len(cfg.ions)
    return {
        "name": name, "kind": "neural_ode", "description": description,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nanosep_version": nanosep_version(),
        "inputs": inputs,
        "outputs": [{"name": f"rejection_{i}", "unit": "-", "low": -5.0, "high": 1.0} for i in cfg.ions],
        "input_scaling": {"offset": [0.0] * (d + 1), "factor": [cfg.flux_ref_L_m2_h] + [1.0] * d},
        # rejection = 1 - h in the transmission state; 1 - h c_scale / c_feed otherwise (no affine map)
        "output_scaling": {"offset": [1.0] * d, "factor": [-1.0] * d} if cfg.state == "transmission" else None,
        "architecture": {
            "hidden": [cfg.hidden] * (cfg.layers - 1), "activation": "tanh", "output_activation": "identity",
            "vector_field_inputs": "masked state (d), tau^1..tau^p, log10 c_feed (0 if absent), presence mask",
            "projection": "v - w (w.v)/(w.w), w = z*c_feed (transmission) or z (concentration), present ions",
            "n_parameters": model.n_parameters, "config": asdict(cfg),
        },
        "weights": {"file": Path(weights_path).name, "sha256": sha256_of(weights_path), "format": "torch state_dict"},
        "onnx": None,
        "data": data or {},
        "metrics": metrics or {},
        "training": training or {},
    }


# -- data --------------------------------------------------------------------------------

@dataclass
class TrajectoryData:
    """Training/evaluation data: B mixtures and N (mixture, flux) queries with rejection targets.

    c_feed: (B, d) mol/m3; traj: (N,) mixture index; flux_L_m2_h: (N,); rejection: (N, d) with
    NaN where not measured/simulated; sd: (N, d) standard deviation for noise augmentation.
    """

    c_feed: np.ndarray
    traj: np.ndarray
    flux_L_m2_h: np.ndarray
    rejection: np.ndarray
    sd: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.sd is None:
            self.sd = np.zeros_like(self.rejection)
        n = len(self.traj)
        if self.flux_L_m2_h.shape != (n,) or self.rejection.shape != (n, self.c_feed.shape[1]):
            raise InvalidInputError(f"inconsistent shapes: traj {self.traj.shape}, flux {self.flux_L_m2_h.shape}, "
                                    f"rejection {self.rejection.shape}, c_feed {self.c_feed.shape}")

    @property
    def n_targets(self) -> int:
        return int(np.isfinite(self.rejection).sum())

    def subset_mixtures(self, idx: np.ndarray) -> TrajectoryData:
        """The data of mixtures ``idx`` (re-indexed 0..len(idx)-1)."""
        idx = np.asarray(idx)
        remap = -np.ones(self.c_feed.shape[0], dtype=int)
        remap[idx] = np.arange(len(idx))
        keep = np.isin(self.traj, idx)
        return TrajectoryData(self.c_feed[idx], remap[self.traj[keep]], self.flux_L_m2_h[keep],
                              self.rejection[keep], self.sd[keep])


def _merge_close(x: np.ndarray, tol: float) -> np.ndarray:
    """Replace values within ``tol`` of their sorted neighbour (single linkage) by their cluster mean."""
    order = np.argsort(x)
    cluster = np.concatenate([[0], np.cumsum(np.diff(x[order]) > tol)])
    means = np.bincount(cluster, weights=x[order]) / np.bincount(cluster)
    out = np.empty_like(x)
    out[order] = means[cluster]
    return out


def from_measured(table: pd.DataFrame, ions: Sequence[str], sd_floor: float = 0.0,
                  merge_flux_L_m2_h: float = 0.0) -> TrajectoryData:
    """Group a :mod:`nanosep.measured` table into mixtures (distinct feeds) and (mixture, flux) queries.

    ``sd = sqrt(rejection_sd^2 + sd_floor^2)`` (NaN rejection_sd counts as 0).
    merge_flux_L_m2_h: within a mixture, fluxes closer than this to their neighbour are one
        operating point (digitised series of one experiment scatter by the reading error) and
        get their mean flux; repeated (point, ion) values are averaged.
    """
    cols = [feed_column(i) for i in ions]
    feeds, traj_of_row = np.unique(table[cols].to_numpy(dtype=float), axis=0, return_inverse=True)
    traj_of_row = traj_of_row.ravel()
    flux = table["flux_L_m2_h"].to_numpy(dtype=float).copy()
    if merge_flux_L_m2_h > 0:
        for b in range(len(feeds)):
            sel = traj_of_row == b
            flux[sel] = _merge_close(flux[sel], merge_flux_L_m2_h)
    sd = np.nan_to_num(table["rejection_sd"].to_numpy(dtype=float))
    long = pd.DataFrame({"traj": traj_of_row, "flux": flux, "j": [list(ions).index(i) for i in table["ion"]],
                         "R": table["rejection"].to_numpy(dtype=float), "sd": np.sqrt(sd**2 + sd_floor**2)})
    agg = long.groupby(["traj", "flux", "j"], as_index=False).mean()
    q, qidx = np.unique(agg[["traj", "flux"]].to_numpy(), axis=0, return_inverse=True)
    qidx = qidx.ravel()
    R = np.full((len(q), len(ions)), np.nan)
    S = np.full((len(q), len(ions)), np.nan)
    R[qidx, agg["j"].to_numpy()] = agg["R"].to_numpy()
    S[qidx, agg["j"].to_numpy()] = agg["sd"].to_numpy()
    return TrajectoryData(feeds, q[:, 0].astype(int), q[:, 1], R, S)


def engine_rejection(ions: Sequence[str], c_feed_mol_m3: np.ndarray, flux_L_m2_h: np.ndarray, *,
                     pore_radius_nm: float, thickness_um: float, pore_dielectric: float,
                     charge_density_mol_m3: float, temperature_K: float = 298.15, options=None) -> np.ndarray:
    """Intrinsic rejection (M, d) of M cases (feed row m at flux m) by :func:`nanosep.transport.solve_batch`.

    Each group of cases with the same present ions is solved with those ions only (the engine
    does not converge with ions at zero concentration); absent ions and non-converged cases
    are NaN (the number of failures is logged).
    """
    from nanosep.transport import TransportOptions, solve_batch

    c = np.atleast_2d(np.asarray(c_feed_mol_m3, dtype=float))
    fl = np.broadcast_to(np.asarray(flux_L_m2_h, dtype=float), (c.shape[0],))
    R = np.full(c.shape, np.nan)
    patterns, group = np.unique(c > 0, axis=0, return_inverse=True)
    for g, present in enumerate(patterns):
        rows = np.flatnonzero(group.ravel() == g)
        cols = np.flatnonzero(present)
        res = solve_batch([ions[j] for j in cols], c[np.ix_(rows, cols)], flux_m_s=lmh_to_m_s(fl[rows]),
                          pore_radius_m=pore_radius_nm * 1e-9, thickness_m=thickness_um * 1e-6,
                          pore_dielectric=pore_dielectric, charge_density_mol_m3=charge_density_mol_m3,
                          temperature_K=temperature_K, options=options or TransportOptions())
        r = np.where(res.converged[:, None], res.rejection_intrinsic, np.nan)
        R[np.ix_(rows, cols)] = r
        if (~res.converged).any():
            log.warning("engine: %d of %d cases did not converge (%s); dropped", int((~res.converged).sum()),
                        len(rows), res.reason[~res.converged][0])
    return R


def engine_data(ions: Sequence[str], c_feed_mol_m3: np.ndarray, flux_L_m2_h: Sequence[float],
                **engine_kw) -> TrajectoryData:
    """Simulate every feed (B, d) at every flux (K,) with :func:`engine_rejection` (same keywords)."""
    c = np.atleast_2d(np.asarray(c_feed_mol_m3, dtype=float))
    fl = np.asarray(flux_L_m2_h, dtype=float)
    B, K = c.shape[0], fl.size
    R = engine_rejection(ions, np.repeat(c, K, axis=0), np.tile(fl, B), **engine_kw)
    return TrajectoryData(c, np.repeat(np.arange(B), K), np.tile(fl, B), R)


# -- training ------------------------------------------------------------------------------

def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the finite targets (seed 001 eqs. 4-5)."""
    ok = torch.isfinite(target)
    return ((torch.where(ok, pred, 0.0) - torch.where(ok, target, 0.0)) ** 2).sum() / ok.sum().clamp_min(1)


def data_loss(model: NeuralODE, data: TrajectoryData, mixtures: np.ndarray | None = None,
              noise: torch.Generator | None = None) -> torch.Tensor:
    """MSE of the model on ``data`` (optionally a subset of mixtures; noisy targets if ``noise``)."""
    d = data if mixtures is None else data.subset_mixtures(mixtures)
    target = torch.as_tensor(d.rejection, dtype=DTYPE)
    if noise is not None:
        target = target + torch.as_tensor(np.nan_to_num(d.sd), dtype=DTYPE) * torch.randn(
            target.shape, generator=noise, dtype=DTYPE)
    pred = model.rejection_at(torch.as_tensor(d.c_feed, dtype=DTYPE), torch.as_tensor(d.flux_L_m2_h, dtype=DTYPE),
                              torch.as_tensor(d.traj))
    return masked_mse(pred, target)


def train(model: nn.Module, data: TrajectoryData, *, epochs: int, lr: float = 1e-3, batch_mixtures: int = 32,
          halve_every: int | None = None, noise: bool = False, regularizer: TrajectoryData | None = None,
          regularizer_weight: float = 0.0, seed: int = 0, loss_fn: Callable = data_loss,
          progress: Callable[[int, float], None] | None = None) -> list[float]:
    """Adam on mini-batches of mixtures (seed 001: batch 32, lr 1e-3 halved every epochs/5).

    noise: draw targets from N(R, sd^2) at each step (seed 001 eq. 5).
    regularizer, regularizer_weight: add ``weight * loss`` on a random mini-batch of a second
        data set (used in fine-tuning: engine data keep the model physical away from the
        measured mixtures; a departure from the seed, which fine-tunes on measured data only).
    loss_fn(model, data, mixtures, noise_generator) -> scalar; returns the mean loss per epoch.
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=halve_every or max(1, epochs // 5), gamma=0.5)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    B = data.c_feed.shape[0]
    history: list[float] = []
    for epoch in range(epochs):
        perm = rng.permutation(B)
        total, nb = 0.0, 0
        for s in range(0, B, batch_mixtures):
            opt.zero_grad()
            loss = loss_fn(model, data, perm[s:s + batch_mixtures], gen if noise else None)
            if regularizer is not None and regularizer_weight > 0:
                rb = rng.choice(regularizer.c_feed.shape[0], size=min(batch_mixtures, regularizer.c_feed.shape[0]),
                                replace=False)
                loss = loss + regularizer_weight * loss_fn(model, regularizer, rb, None)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            nb += 1
        sched.step()
        history.append(total / nb)
        if progress is not None:
            progress(epoch, history[-1])
    return history
