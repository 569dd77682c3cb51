"""Block-diagonal merge of per-output nets (nanosep.surrogates.merge): exact in torch and after ONNX export."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from nanosep.surrogates.merge import merge_mlps, split_mlp
from nanosep.surrogates.mlp import build_mlp

from nanosep.errors import InvalidInputError


def _nets(output_activation="tanh"):
    # random, non-trivial weights: scale up so the tanh layers are far from linear
    nets = [build_mlp(5, [7, 6], 1, output_activation=output_activation, seed=1),
            build_mlp(5, [4, 3], 2, output_activation=output_activation, seed=2)]
    with torch.no_grad():
        for n in nets:
            for p in n.parameters():
                p.mul_(2.0)
    return nets


@pytest.mark.parametrize("output_activation", ["tanh", "identity"])
def test_merged_net_equals_separate_nets_in_torch(output_activation):
    nets = _nets(output_activation)
    big = merge_mlps(nets)
    z = torch.randn(500, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    with torch.no_grad():
        ref = torch.cat([n(z) for n in nets], dim=1)
        got = big(z)
    assert got.shape == (500, 3)
    assert float(ref.abs().max()) > 0.1           # not a degenerate comparison
    assert float((got - ref).abs().max()) <= 1e-12
    # sizes add up per layer
    lin = [m for m in big if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in lin] == [11, 9, 3]


def test_split_inverts_merge_and_refuses_coupled_nets():
    nets = _nets()
    big = merge_mlps(nets)
    back = split_mlp(big, [[7, 6], [4, 3]], [1, 2])
    for a, b in zip(nets, back):
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.equal(p, q)
    with torch.no_grad():
        [m for m in big if isinstance(m, torch.nn.Linear)][1].weight[0, 10] = 0.5   # couple net 0 to net 1
    with pytest.raises(InvalidInputError, match="couples the blocks"):
        split_mlp(big, [[7, 6], [4, 3]], [1, 2])
    with pytest.raises(InvalidInputError, match="add up"):
        split_mlp(big, [[7, 6], [4, 4]], [1, 2])


def test_merge_refuses_unequal_depth_or_activation():
    a = build_mlp(5, [4, 4], 1, seed=0)
    with pytest.raises(InvalidInputError, match="equal depth"):
        merge_mlps([a, build_mlp(5, [4], 1, seed=0)])
    with pytest.raises(InvalidInputError, match="output_activation"):
        merge_mlps([a, build_mlp(5, [4, 4], 1, output_activation="tanh", seed=0)])
    with pytest.raises(InvalidInputError, match="inputs"):
        merge_mlps([a, build_mlp(4, [4, 4], 1, seed=0)])


def test_merged_net_equals_separate_nets_after_onnx_export(tmp_path):
    import onnx
    import onnxruntime as ort
    from nanosep.surrogates.onnx_io import dense_layers, export_onnx, forward_numpy

    nets = _nets()
    big = merge_mlps(nets).eval()
    path = tmp_path / "merged.onnx"
    export_onnx(big, 5, path)
    z = np.random.default_rng(3).normal(size=(400, 5)) * 2
    with torch.no_grad():
        ref = np.hstack([n(torch.as_tensor(z)).numpy() for n in nets])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: z})[0]
    assert got.dtype == np.float64
    assert np.max(np.abs(got - ref)) <= 1e-12
    # the graph read back as dense layers (what OMLT / CasADi see) is the same function
    assert np.max(np.abs(forward_numpy(dense_layers(onnx.load(str(path))), z) - ref)) <= 1e-12


def test_widened_net_computes_the_same_function():
    from nanosep.surrogates.merge import widen_mlp

    net = _nets()[0]
    wide = widen_mlp(net, [12, 9], seed=4)
    z = torch.randn(300, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        assert float((wide(z) - net(z)).abs().max()) <= 1e-12
    # the new neurons are live (non-zero input weights), so training can use them
    assert float(wide[0].weight[7:].detach().abs().min()) > 0
    with pytest.raises(InvalidInputError, match="cannot widen"):
        widen_mlp(net, [5, 9])
