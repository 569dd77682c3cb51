"""A fit's mean and covariance (``nanosep fit`` -> ``parameters.json``) as input of a covariance study.

``parameters.json`` (:mod:`nanosep.transport.characterization.report`) holds ``covariance``:
``parameters`` (slot names in the order of the matrix, e.g. ``pore_radius_nm`` or
``charge_density_mol_m3[NaCl]`` for a parameter fitted per data set), ``mean`` and ``cov`` in user
units (nm, um, -, mol/m3).  A propagation study needs one value per membrane parameter, so a slot
that varies per data set is taken for one chosen ``dataset`` label.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from nanosep.errors import InvalidInputError

_SLOT = re.compile(r"^(?P<name>[a-z_0-9]+)(\[(?P<label>.+)\])?$")


def covariance_from_fit(path: str | Path, dataset: str | None = None, parameters: list[str] | None = None,
                        known: tuple[str, ...] = ("pore_radius_nm", "thickness_um", "pore_dielectric",
                                                  "charge_density_mol_m3"),
                        ) -> tuple[list[str], list[float], list[list[float]]]:
    """Plain parameter names, mean and covariance (user units) of the fit in ``path``.

    ``dataset`` picks the label of per-data-set slots (required if there are any);
    ``parameters`` keeps a subset (default: every fitted membrane parameter in ``known``).

    Raises:
        InvalidInputError: unreadable file, no ``covariance`` block, a missing or ambiguous data-set label,
            a requested parameter that was not fitted, or a non-finite entry (e.g. an unidentifiable fit).
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        block = doc["covariance"]
        slots, mean, cov = list(block["parameters"]), list(block["mean"]), list(block["cov"])
    except FileNotFoundError:
        raise InvalidInputError(f"covariance.from_fit: file {p} not found") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"covariance.from_fit: {p} is not a nanosep fit's parameters.json "
                                f"with a covariance block ({type(exc).__name__}: {exc})") from None
    parsed = []
    for s in slots:
        m = _SLOT.match(str(s))
        if m is None:
            raise InvalidInputError(f"covariance.from_fit: {p}: cannot read slot name {s!r}")
        parsed.append((m["name"], m["label"]))
    labels = sorted({lab for _, lab in parsed if lab is not None})
    if labels and dataset is None:
        raise InvalidInputError(f"covariance.from_fit: {p} has parameters per data set {labels}; "
                                "choose one with covariance.dataset")
    if dataset is not None and dataset not in labels:
        raise InvalidInputError(f"covariance.dataset={dataset!r} is not among the fit's data sets {labels}")
    pick: dict[str, int] = {}
    for k, (name, lab) in enumerate(parsed):
        if name in known and (lab is None or lab == dataset):
            pick[name] = k
    wanted = list(parameters) if parameters else [n for n in known if n in pick]
    missing = [n for n in wanted if n not in pick]
    if missing:
        raise InvalidInputError(f"covariance.parameters {missing} were not fitted in {p} (fitted: {sorted(pick)})")
    idx = [pick[n] for n in wanted]
    mu = [mean[i] for i in idx]
    c = [[cov[i][j] for j in idx] for i in idx]
    bad = [wanted[i] for i in range(len(idx)) if mu[i] is None or not math.isfinite(mu[i])
           or any(v is None or not math.isfinite(v) for v in c[i])]
    if bad:
        raise InvalidInputError(f"covariance.from_fit: {p}: mean or covariance of {bad} is not finite "
                                "(an unidentifiable direction of the fit); fix the parameter or choose others")
    return wanted, [float(v) for v in mu], [[float(v) for v in row] for row in c]
