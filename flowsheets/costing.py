"""Verberne-type cost model of seed 002 (eqs. 7-8) with parameters from ``data/verberne_costs.csv``.

Investment (seed 002 eq. 7), with ``A`` the total membrane area [m2] and ``P`` the total pump
electric power [W]::

    C_membrane   = c_m2 A
    C_electro    = c_W P
    C_civil      = f_civil (C_membrane + C_electro)
    C_mechanical = f_mech  (C_membrane + C_electro)
    C_investment = C_civil + C_mechanical + C_electro + C_membrane

Annual operating cost (seed 002 eq. 8), with ``V`` the product volume per year
(``Q_product * 3600 * 8760 * utilization``)::

    C_depreciation = C_civil / n_civil + C_mechanical / n_mech + C_electro / n_electro + f_repl C_membrane
    C_energy       = price_kWh * P / 1000 * 8760 * utilization
    C_maintenance  = f_maint C_investment
    C_specific     = c_m3 V
    C_operation    = C_depreciation + C_energy + C_maintenance + C_specific       [USD/yr]
    cost per m3    = C_operation / V                                             [USD/m3]

Seed 002 names the four terms of each sum but gives no formulas or numbers (it points to its
ref. [24], Rall et al. 2020); the formulas above are the simplest that have those terms, and every
number is an assumption from WaterTAP's public defaults (see the CSV's header and source column).
:func:`verberne_costs` works on floats and on Pyomo expressions alike (one implementation).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import pandas as pd
import pyomo.environ as pyo

from nanosep.errors import InvalidInputError

__all__ = ["COST_FILE", "CostParameters", "add_costing", "load_cost_parameters", "verberne_costs"]

COST_FILE = "verberne_costs.csv"
HOURS_PER_YEAR = 8760.0
REQUIRED = ("membrane_cost_per_m2", "membrane_replacement_per_year", "pump_cost_per_W", "civil_factor",
            "mechanical_factor", "depreciation_years_civil", "depreciation_years_mechanical",
            "depreciation_years_electro", "electricity_price_per_kWh", "utilization_factor", "maintenance_factor",
            "specific_cost_per_m3")


@dataclass(frozen=True)
class CostParameters:
    """The CSV as a mapping ``name -> value`` plus units and sources."""

    values: Mapping[str, float]
    units: Mapping[str, str]
    sources: Mapping[str, str]

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def replace(self, **changes: float) -> CostParameters:
        if unknown := sorted(set(changes) - set(self.values)):
            raise InvalidInputError(f"unknown cost parameter(s) {unknown}; known: {sorted(self.values)}")
        return CostParameters({**self.values, **{k: float(v) for k, v in changes.items()}}, self.units, self.sources)


def load_cost_parameters(path: str | Path | None = None) -> CostParameters:
    """Read the cost CSV (default: the packaged ``data/verberne_costs.csv``); checks completeness and signs."""
    path = Path(str(files("nanosep.flowsheets") / "data" / COST_FILE)) if path is None else Path(path)
    df = pd.read_csv(path, comment="#")
    if missing := [c for c in ("name", "value", "unit", "source") if c not in df.columns]:
        raise InvalidInputError(f"{path}: missing column(s) {missing}")
    if missing := [n for n in REQUIRED if n not in set(df["name"])]:
        raise InvalidInputError(f"{path}: missing cost parameter(s) {missing}")
    if bad := df.loc[~(df["value"] >= 0), "name"].tolist():
        raise InvalidInputError(f"{path}: cost parameter(s) {bad} must be finite and >= 0")
    if bad := df.loc[df["source"].isna() | (df["source"].astype(str).str.strip() == ""), "name"].tolist():
        raise InvalidInputError(f"{path}: cost parameter(s) {bad} have no source")
    return CostParameters(dict(zip(df["name"], df["value"].astype(float))), dict(zip(df["name"], df["unit"])),
                          dict(zip(df["name"], df["source"])))


def verberne_costs(p: CostParameters, area_m2, pump_power_W, product_m3_s) -> dict:
    """All cost terms (module docstring) for floats or Pyomo expressions; USD and USD/yr."""
    hours = HOURS_PER_YEAR * p["utilization_factor"]
    volume = product_m3_s * 3600.0 * hours
    c = {"membrane": p["membrane_cost_per_m2"] * area_m2, "electro": p["pump_cost_per_W"] * pump_power_W}
    equipment = c["membrane"] + c["electro"]
    c["civil"] = p["civil_factor"] * equipment
    c["mechanical"] = p["mechanical_factor"] * equipment
    c["investment"] = c["civil"] + c["mechanical"] + c["electro"] + c["membrane"]
    c["depreciation"] = (c["civil"] / p["depreciation_years_civil"] + c["mechanical"] / p["depreciation_years_mechanical"]
                         + c["electro"] / p["depreciation_years_electro"]
                         + p["membrane_replacement_per_year"] * c["membrane"])
    c["energy"] = p["electricity_price_per_kWh"] * pump_power_W / 1000.0 * hours
    c["maintenance"] = p["maintenance_factor"] * c["investment"]
    c["specific"] = p["specific_cost_per_m3"] * volume
    c["operation"] = c["depreciation"] + c["energy"] + c["maintenance"] + c["specific"]
    c["product_m3_per_year"] = volume
    c["per_m3"] = c["operation"] / volume
    return c


def add_costing(parent, stages, pumps, product_stream, params: CostParameters | None = None, name: str = "costing"):
    """Block ``parent.<name>`` with one Expression per cost term of :func:`verberne_costs` (USD_2018, per year)."""
    p = params or load_cost_parameters()
    b = pyo.Block()
    parent.add_component(name, b)
    u = pyo.units
    area = sum(s.area for s in stages) / u.m**2
    power = sum(pp.work for pp in pumps) / u.W
    terms = verberne_costs(p, area, power, product_stream.flow_vol / (u.m**3 / u.s))
    for key, expr in terms.items():
        b.add_component(key, pyo.Expression(expr=expr))
    b.parameters = p
    return b
