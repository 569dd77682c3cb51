"""Activity coefficients for the compiled kernel (:mod:`.compiled`): ln gamma and d ln gamma / d c of one
solution, in numba, for per-case parameters prepared here from the engine's activity model.

The engine evaluates the models of :mod:`.activity` on ``max(c, 1e-300)`` [mol/m3] at the four interface
solutions (wall, pore entrance, pore exit, permeate; :meth:`.system.DSPMDESystem.evaluate`); the kernel
calls :func:`ln_gamma` with the same floor at the same points.  Models (``KIND``):

* ``IDEAL`` (0): ln gamma = 0.
* ``DAVIES`` (1): ``ln gamma_i = -A z_i^2 (s / (1 + s) - 0.3 s^2)``, ``s = sqrt(I)``,
  ``I = max(sum z_j^2 m_j / 2, 1e-30)`` [mol/kg], ``m = c / rho_w(T)``, ``A = 3 A_phi(T)``
  (:class:`.activity.DaviesActivity`, the same arithmetic); the Jacobian in closed form
  (``dI/dc_j = z_j^2 / (2 rho_w)``, 0 where I is floored).
* ``PITZER`` (2): the evaluation of :meth:`.pitzer.PitzerActivity._ln_gamma_real` (its analytic Jacobian,
  the same pair-by-pair terms: Debye-Hueckel ``F``, cation-anion ``B``, ``B'``, ``C``, like-pair ``theta``
  with the unsymmetric mixing ``E-theta`` of Pitzer's 1975 closed-form ``J``, triplet ``psi``; seed 003
  App. A) for the per-case, temperature-corrected parameters the model already holds; the parameter
  preparation (data sets, temperature functions, which pairs exist) stays in :mod:`.pitzer`.

Per-case parameters (:func:`activity_parameters`): a (B, NAP) array; Davies: ``[A, rho_w]``; Pitzer: one flat
record (:func:`pitzer_record`) of ``rho_w, A_phi``, the table sizes, the alphas and the charge
products ``z z'`` of E-theta, then per cation-anion pair ``(c, a, alpha index 1, 2, has beta2, beta0, beta1, beta2,
C = Cphi / (2 sqrt|z_c z_a|))``, per like pair ``(i, j, three multiplier indices, theta)``, per triplet
``(i, j, o, psi)`` (indices stored as floats, exactly).
"""
from __future__ import annotations

import numpy as np

from nanosep.errors import InvalidInputError

from .activity import I_TINY
from .pitzer import (
    _G_SERIES,
    _GP_SERIES,
    _J_C1,
    _J_C2,
    _J_C3,
    _J_C4,
    _SERIES_SWITCH,
    B_PITZER,
    PitzerActivity,
)
from .system import BatchParameters

try:
    from numba import njit
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    HAVE_NUMBA = False

IDEAL, DAVIES, PITZER = 0, 1, 2
#: activity models the kernel implements, by ``TransportOptions.activity``
KIND = {"ideal": IDEAL, "davies": DAVIES, "pitzer": PITZER}
#: fields of a Pitzer record: header, per cation-anion pair, per like pair, per triplet
PZ_HEAD, PZ_CA, PZ_LIKE, PZ_PSI = 7, 9, 6, 4
_G = np.array(_G_SERIES)
_GP = np.array(_GP_SERIES)


def pitzer_record(model: PitzerActivity) -> np.ndarray:
    """(B, NAP) flat per-case records of a :class:`.pitzer.PitzerActivity` (per-case T) or (1, NAP) (one T):
    its index tables and temperature-corrected parameter values, laid out as the module docstring says."""
    t = model.tables
    b0, b1, b2, C, theta, psi = model.pair_parameters()
    Pc, Pl, Ps = len(t.ca), len(t.like), len(t.psi)
    per_case = np.ndim(model.T) > 0
    B = np.size(model.T) if per_case else 1

    def col(a):   # (B, P) per case, or (1, P)
        return np.atleast_2d(np.asarray(a, float))

    head = np.column_stack([np.broadcast_to(model.rho_w, B), np.broadcast_to(model.A_phi, B),
                            np.full((B, 5), [Pc, Pl, Ps, len(t.alphas), len(t.ks)], float)])
    parts = [head, np.broadcast_to(t.alphas, (B, len(t.alphas))), np.broadcast_to(t.ks, (B, len(t.ks)))]
    if Pc:
        idx = np.column_stack([t.ca, t.alpha_idx, np.array(t.beta2, float)]).astype(float)
        vals = np.stack([col(b0), col(b1), col(b2), col(C)], axis=2)   # (B, Pc, 4)
        parts.append(np.concatenate([np.broadcast_to(idx, (B, Pc, 5)), vals], axis=2).reshape(B, -1))
    if Pl:
        idx = np.column_stack([t.like, t.k_idx]).astype(float)
        parts.append(np.concatenate([np.broadcast_to(idx, (B, Pl, 5)), col(theta)[:, :, None]],
                                    axis=2).reshape(B, -1))
    if Ps:
        parts.append(np.concatenate([np.broadcast_to(t.psi.astype(float), (B, Ps, 3)),
                                     col(psi)[:, :, None]], axis=2).reshape(B, -1))
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def activity_parameters(prm: BatchParameters) -> tuple[int, np.ndarray]:
    """The kernel's model code and (B, NAP) per-case parameters of ``prm.activity`` (the engine's
    ``_ActivityFn``; None: ideal)."""
    B = prm.batch
    if prm.activity is None:
        return IDEAL, np.zeros((B, 1))
    kind = getattr(prm.activity, "kind", None)
    if kind not in KIND:
        raise InvalidInputError(f"activity {kind!r}: the compiled kernel implements {sorted(KIND)}")
    model = prm.activity.model
    if kind == "davies":
        return DAVIES, np.column_stack([np.broadcast_to(model.A_gamma, B), np.broadcast_to(model.rho_w, B)])
    if kind == "pitzer":
        rec = pitzer_record(model)
        return PITZER, np.ascontiguousarray(np.broadcast_to(rec, (B, rec.shape[1])))
    return IDEAL, np.zeros((B, 1))


if HAVE_NUMBA:
    @njit(cache=True, nogil=True)
    def _davies(ap, z, c, lg, dlg, jac):
        n = z.size
        A, rho = ap[0], ap[1]
        Iraw = 0.0
        for j in range(n):
            if z[j] != 0.0:
                Iraw += 0.5 * z[j] * z[j] * (max(c[j], 1e-300) / rho)
        I = max(Iraw, I_TINY)
        s = np.sqrt(I)
        f = s / (1.0 + s) - 0.3 * s * s
        for i in range(n):
            lg[i] = -A * z[i] * z[i] * f
        if not jac:
            return
        fI = 0.0
        if Iraw >= I_TINY:
            fI = 0.5 / (s * (1.0 + s) * (1.0 + s)) - 0.3            # df/dI
        for i in range(n):
            for j in range(n):
                dlg[i, j] = -A * z[i] * z[i] * fI * (0.5 * z[j] * z[j] / rho)

    @njit(cache=True, nogil=True)
    def _horner(coef, x):
        acc = coef[coef.size - 1]
        for k in range(coef.size - 2, -1, -1):
            acc = acc * x + coef[k]
        return acc

    @njit(cache=True, nogil=True)
    def _g_gprime(x):
        """Pitzer's g(x), g'(x) (:func:`.pitzer.pitzer_g`, ``pitzer_gprime``: Taylor series below the switch)."""
        if x < _SERIES_SWITCH:
            return _horner(_G, x), _horner(_GP, x)
        ex = np.exp(-x)
        return 2.0 * (1.0 - (1.0 + x) * ex) / (x * x), -2.0 * (1.0 - (1.0 + x + 0.5 * x * x) * ex) / (x * x)

    @njit(cache=True, nogil=True)
    def _etheta_d2(x):
        """(J, K = x J', x dK/dx) of Pitzer's closed-form J (:func:`.pitzer.etheta_terms_d2`)."""
        lx = np.log(x)
        p = np.exp(_J_C4 * lx)
        e = _J_C1 * np.exp(-_J_C2 * lx - _J_C3 * p)
        d = 4.0 + e
        j = x / d
        u = _J_C2 + _J_C3 * _J_C4 * p
        k = j + j * e * u / d
        return j, k, k + (e / d) * (u * k - 4.0 * j * u * u / d + (_J_C3 * _J_C4 * _J_C4) * p * j)

    @njit(cache=True, nogil=True)
    def _pitzer(ap, z, c, lg, dlg, jac):
        """:meth:`.pitzer.PitzerActivity._ln_gamma_real` for one solution (module docstring: the record)."""
        n = z.size
        rho, A = ap[0], ap[1]
        Pc, Pl, Ps, NA, NK = int(ap[2]), int(ap[3]), int(ap[4]), int(ap[5]), int(ap[6])
        alphas = ap[PZ_HEAD:PZ_HEAD + NA]
        ks = ap[PZ_HEAD + NA:PZ_HEAD + NA + NK]
        o_ca = PZ_HEAD + NA + NK
        o_like = o_ca + PZ_CA * Pc
        o_psi = o_like + PZ_LIKE * Pl
        # one work buffer (numba allocates each array on the heap): m, L, vY, vC (n each), off (n, n), g, gp, h (NA
        # each), EJ, EK, ED (NK each)
        ws = np.empty(4 * n + n * n + 3 * NA + 3 * NK)
        m = ws[:n]
        L = ws[n:2 * n]
        vY = ws[2 * n:3 * n]
        vC = ws[3 * n:4 * n]
        off = ws[4 * n:4 * n + n * n].reshape((n, n))
        o = 4 * n + n * n
        g = ws[o:o + NA]
        gp = ws[o + NA:o + 2 * NA]
        h = ws[o + 2 * NA:o + 3 * NA]
        o += 3 * NA
        EJ = ws[o:o + NK]                 # E-theta's J, x J', x d(x J')/dx per distinct charge product
        EK = ws[o + NK:o + 2 * NK]
        ED = ws[o + 2 * NK:o + 3 * NK]
        ws[n:4 * n + n * n] = 0.0         # L, vY, vC, off accumulate
        Iraw = 0.0
        Z = 0.0
        for j in range(n):
            m[j] = max(c[j], 1e-300) / rho
            Iraw += m[j] * (0.5 * z[j] * z[j])
            Z += m[j] * abs(z[j])
        I = max(Iraw, I_TINY)
        sI = np.sqrt(I)
        bs = 1.0 + B_PITZER * sI
        F = -A * (sI / bs + (2.0 / B_PITZER) * np.log(bs))
        FI = -A * (1.0 / (bs * bs) + 2.0 / bs) / (2.0 * sI)
        csum = 0.0
        for k in range(NA):
            x = alphas[k] * sI
            g[k], gp[k] = _g_gprime(x)
            h[k] = -2.0 * gp[k] - 0.5 * x * np.exp(-x)
        if Pl:
            for k in range(NK):
                EJ[k], EK[k], ED[k] = _etheta_d2(6.0 * ks[k] * A * sI)
        I2 = I * I
        for p in range(Pc + Pl):          # pair terms m_o W_p (module docstring of pitzer._ln_gamma_real)
            if p < Pc:
                r = o_ca + PZ_CA * p
                i, j, k1, k2 = int(ap[r]), int(ap[r + 1]), int(ap[r + 2]), int(ap[r + 3])
                b0, b1, b2, C = ap[r + 5], ap[r + 6], ap[r + 7], ap[r + 8]
                X = b0 + b1 * g[k1]
                Y = b1 * gp[k1] / I
                Yp = b1 * h[k1]
                if ap[r + 4] != 0.0:
                    X = X + b2 * g[k2]
                    Y = Y + b2 * gp[k2] / I
                    Yp = Yp + b2 * h[k2]
                W = 2.0 * X + Z * C
                Yp = Yp / I2
            else:
                r = o_like + PZ_LIKE * (p - Pc)
                i, j = int(ap[r]), int(ap[r + 1])
                th = ap[r + 5]
                C = 0.0
                if z[i] == z[j]:
                    W, Y, Yp = 2.0 * th, 0.0, 0.0
                else:
                    k0, k1, k2 = int(ap[r + 2]), int(ap[r + 3]), int(ap[r + 4])
                    zz = z[i] * z[j]
                    et = zz / (4.0 * I) * (EJ[k0] - 0.5 * EJ[k1] - 0.5 * EJ[k2])
                    sK = EK[k0] - 0.5 * EK[k1] - 0.5 * EK[k2]
                    Y = -et / I + zz / (8.0 * I * I) * sK
                    I3 = I * I * I
                    Yp = (-Y / I + et / (I * I) - zz * sK / (4.0 * I3)
                          + zz * (ED[k0] - 0.5 * ED[k1] - 0.5 * ED[k2]) / (16.0 * I3))
                    W = 2.0 * (th + et)
            mm = m[i] * m[j]
            F = F + mm * Y
            L[i] = L[i] + m[j] * W
            L[j] = L[j] + m[i] * W
            csum = csum + mm * C
            FI = FI + mm * Yp
            vY[i] = vY[i] + m[j] * Y
            vY[j] = vY[j] + m[i] * Y
            vC[i] = vC[i] + m[j] * C
            vC[j] = vC[j] + m[i] * C
            off[i, j] = W
            off[j, i] = W
        for p in range(Ps):
            r = o_psi + PZ_PSI * p
            i, j, o = int(ap[r]), int(ap[r + 1]), int(ap[r + 2])
            ps = ap[r + 3]
            qi, qj, qo = m[i] * ps, m[j] * ps, m[o] * ps
            L[i] = L[i] + m[j] * qo
            L[j] = L[j] + m[i] * qo
            L[o] = L[o] + m[i] * qj
            off[i, j] += qo
            off[j, i] += qo
            off[i, o] += qj
            off[o, i] += qj
            off[j, o] += qi
            off[o, j] += qi
        for i in range(n):
            q = z[i]
            lg[i] = L[i] + (q * q) * F + abs(q) * csum if q != 0.0 else 0.0
        if not jac:
            return
        on = 1.0 if Iraw >= I_TINY else 0.0
        for k in range(n):
            q = z[k]
            for j in range(n):
                dI2 = z[j] * z[j] * on                     # 2 dI/dm_j
                row = vY[k] * dI2 + vC[k] * abs(z[j])
                if q != 0.0:
                    row = row + (q * q) * (0.5 * FI * dI2 + vY[j]) + abs(q) * vC[j]
                dlg[k, j] = (row + off[k, j]) / rho

    @njit(cache=True, nogil=True)
    def ln_gamma(kind, ap, z, c, lg, dlg, jac):
        """ln gamma (n,) into ``lg`` and, if ``jac``, d ln gamma_i / d c_j [m3/mol] (n, n) into ``dlg``, of
        the solution ``c`` (n,) [mol/m3] for model ``kind`` with the case's parameters ``ap``."""
        if kind == DAVIES:
            _davies(ap, z, c, lg, dlg, jac)
        elif kind == PITZER:
            _pitzer(ap, z, c, lg, dlg, jac)
        else:
            lg[:] = 0.0
            if jac:
                dlg[:, :] = 0.0
