"""The from-scratch RNN / LSTM / GRU equal `torch.nn`'s, outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from physiodl.models.recurrent import GRU, LSTM, RNN

LAYERS = [RNN, LSTM, GRU]
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


def _state_tuple(state: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, True)])
@pytest.mark.parametrize("layer_type", LAYERS, ids=lambda t: t.__name__)
def test_scratch_equals_torch(
    layer_type: type[RNN], num_layers: int, bidirectional: bool, dtype: torch.dtype
) -> None:
    torch.manual_seed(0)
    reference = layer_type.torch_type(
        5, 6, num_layers, batch_first=True, bidirectional=bidirectional
    ).to(dtype)
    scratch = layer_type.from_torch(reference)
    directions = 2 if bidirectional else 1
    x = torch.randn(4, 7, 5, dtype=dtype)
    initial = [
        torch.randn(num_layers * directions, 4, 6, dtype=dtype) for _ in range(layer_type.n_states)
    ]
    results = []
    for layer in (reference, scratch):
        inputs = [x.clone().requires_grad_(), *(s.clone().requires_grad_() for s in initial)]
        state = tuple(inputs[1:]) if layer is scratch or layer_type is LSTM else inputs[1]
        output, final = layer(inputs[0], state)
        final = _state_tuple(final)
        # weights every output and final state differently so each gradient path counts
        loss = (output * torch.linspace(-1, 2, output.shape[-1], dtype=dtype)).sum()
        loss = loss + sum((s * s * (k + 1)).sum() for k, s in enumerate(final))
        loss.backward()
        grads = [t.grad for t in inputs] + [p.grad for p in layer.parameters()]
        results.append((output, final, grads))

    (out_ref, final_ref, grads_ref), (out, final, grads) = results
    atol = TOLERANCE[dtype]
    assert out.shape == (4, 7, directions * 6)
    assert out.dtype == dtype
    torch.testing.assert_close(out, out_ref, atol=atol, rtol=0)
    assert [s.shape for s in final] == [(num_layers * directions, 4, 6)] * layer_type.n_states
    for mine, theirs in zip(final, final_ref, strict=True):
        torch.testing.assert_close(mine, theirs, atol=atol, rtol=0)
    assert len(grads) == len(grads_ref) == 1 + layer_type.n_states + 4 * num_layers * directions
    for mine, theirs in zip(grads, grads_ref, strict=True):
        assert theirs.abs().max() > 0  # a path that exists in both
        torch.testing.assert_close(mine, theirs, atol=atol, rtol=0)


@pytest.mark.parametrize("layer_type", LAYERS, ids=lambda t: t.__name__)
def test_hand_written_backward_matches_finite_differences(layer_type: type[RNN]) -> None:
    torch.manual_seed(1)
    layer = layer_type(3, 4, num_layers=2, bidirectional=True).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    initial = [
        torch.randn(4, 2, 4, dtype=torch.float64, requires_grad=True)
        for _ in range(layer_type.n_states)
    ]

    def flat_outputs(x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output, final = layer(x, state)
        return (output, *final)

    assert torch.autograd.gradcheck(flat_outputs, (x, *initial))


@pytest.mark.parametrize("layer_type", LAYERS, ids=lambda t: t.__name__)
def test_parameters_are_named_and_shaped_like_torch(layer_type: type[RNN]) -> None:
    reference = layer_type.torch_type(3, 4, 2, bidirectional=True)
    scratch = layer_type(3, 4, 2, bidirectional=True)
    shapes = {name: p.shape for name, p in reference.named_parameters()}
    assert {name: p.shape for name, p in scratch.named_parameters()} == shapes
    bound = 1 / 4**0.5  # torch.nn's U(-1/sqrt(hidden), 1/sqrt(hidden))
    assert all(p.abs().max() <= bound for p in scratch.parameters())
    assert max(p.abs().max() for p in scratch.parameters()) > 0.9 * bound


def test_final_state_is_the_last_output_of_each_direction() -> None:
    torch.manual_seed(2)
    layer = LSTM(3, 4, bidirectional=True)
    with torch.no_grad():
        output, (h, c) = layer(torch.randn(2, 6, 3))
    torch.testing.assert_close(h[0], output[:, -1, :4], atol=0, rtol=0)
    torch.testing.assert_close(h[1], output[:, 0, 4:], atol=0, rtol=0)
    assert c.shape == (2, 2, 4)


def test_from_torch_refuses_what_it_cannot_copy() -> None:
    with pytest.raises(TypeError, match="needs a LSTM"):
        LSTM.from_torch(nn.GRU(3, 4))
    with pytest.raises(ValueError, match="biases"):
        LSTM.from_torch(nn.LSTM(3, 4, bias=False))
    with pytest.raises(ValueError, match="tanh"):
        RNN.from_torch(nn.RNN(3, 4, nonlinearity="relu"))


def test_wrong_input_shape_is_named() -> None:
    with pytest.raises(ValueError, match=r"expects \(batch, time, 3\), got \(2, 5, 4\)"):
        GRU(3, 4)(torch.randn(2, 5, 4))
