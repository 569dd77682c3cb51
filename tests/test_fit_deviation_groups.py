"""Deviation metrics per data set (dominant salt) and per row kind (salt vs trace ion)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nanosep.errors import InvalidInputError
from nanosep.transport.characterization.workflow import deviation_by_group, deviation_metrics


def _table():
    return pd.DataFrame({
        "dominant_salt": ["A", "A", "A", "B", "B"],
        "rejection_basis": ["salt", "salt", "ion", "salt", "ion"],
        "rejection": [0.5, 0.5, -0.2, 0.9, 0.0],
    })


def test_by_group_matches_hand_computed_values():
    t = _table()
    model = np.array([0.6, 0.4, 0.1, 0.95, -0.5])
    by = deviation_by_group(t, model).set_index("group")
    assert list(by.index) == ["A", "B", "all"]
    # A: |0.1|, |-0.1|, |0.3| -> 0.5 / 3 ; salt rows 0.1, ion rows 0.3
    assert by.loc["A", "mad_rejection"] == pytest.approx(0.5 / 3, abs=1e-15)
    assert by.loc["A", "mad_rejection_salt"] == pytest.approx(0.1, abs=1e-15)
    assert by.loc["A", "mad_rejection_ion"] == pytest.approx(0.3, abs=1e-15)
    assert by.loc["B", "mad_rejection"] == pytest.approx((0.05 + 0.5) / 2, abs=1e-15)
    assert by.loc["B", "n"] == 2
    # the "all" row is the ungrouped metric, and the row-weighted mean of the groups
    ref = deviation_metrics(t["rejection"], model)
    for k, v in ref.items():
        assert by.loc["all", k] == pytest.approx(v, rel=1e-12), k
    w = by.loc[["A", "B"], "n"].to_numpy()
    assert np.average(by.loc[["A", "B"], "mad_rejection"], weights=w) == pytest.approx(ref["mad_rejection"])


def test_by_group_without_basis_column_and_missing_kind():
    t = _table().drop(columns="rejection_basis")
    by = deviation_by_group(t, t["rejection"].to_numpy()).set_index("group")
    assert (by["mad_rejection"] == 0).all()
    assert "mad_rejection_salt" not in by.columns
    t2 = _table()
    t2["rejection_basis"] = "ion"
    by2 = deviation_by_group(t2, t2["rejection"].to_numpy() + 0.1).set_index("group")
    assert np.isnan(by2.loc["A", "mad_rejection_salt"])
    assert by2.loc["all", "mad_rejection_ion"] == pytest.approx(0.1)


def test_by_group_bad_input_names_the_problem():
    t = _table()
    with pytest.raises(InvalidInputError, match="'membrane'"):
        deviation_by_group(t, np.zeros(5), column="membrane")
    with pytest.raises(InvalidInputError, match="4 model values for 5 rows"):
        deviation_by_group(t, np.zeros(4))
