"""From-scratch recurrent layers (RNN, LSTM, GRU) and the seed's recurrent networks.

The layers are written with the textbook equations and an explicit Python loop over time,
as the seed asks, and backpropagate through time by hand (`torch.autograd.Function`): per
step one matrix product and a few in-cache elementwise operations, forwards and backwards;
the input projections and weight gradients are single products over the whole sequence.

They compute exactly what `torch.nn.RNN` (tanh), `torch.nn.LSTM` and `torch.nn.GRU`
compute: parameters have the same names, shapes and gate order, so
``scratch.load_state_dict(torch_layer.state_dict())`` (or `from_torch`) copies weights.
Input ``(batch, time, features)``; output ``(batch, time, directions * hidden)`` and a state
tuple, ``(h,)`` for RNN and GRU and ``(h, c)`` for LSTM, of ``(layers * directions, batch,
hidden)`` tensors ordered like `torch.nn`'s.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from physiodl.models.registry import register_model


class _RNNScan(torch.autograd.Function):
    """``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` over a time-major sequence."""

    @staticmethod
    @torch.no_grad()  # already so when called by apply(); torch.export needs it said
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        h0: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor,
        b_hh: Tensor,
    ) -> Tensor:
        steps, batch, _ = x.shape
        h = x.new_empty(steps + 1, batch, w_hh.shape[1])
        h[0] = h0
        # the input part of every step in one product, then h_t in place
        torch.addmm(b_ih + b_hh, _flat(x), w_ih.t(), out=h[1:].view(steps * batch, -1))
        for h_prev, h_t in pairwise(h):
            h_t.addmm_(h_prev, w_hh.t()).tanh_()
        ctx.save_for_backward(x, w_ih, w_hh, h)
        return h[1:]

    @staticmethod
    def backward(ctx: FunctionCtx, d_out: Tensor) -> tuple[Tensor | None, ...]:
        x, w_ih, w_hh, h = ctx.saved_tensors
        steps = x.shape[0]
        d_pre = torch.empty_like(h[1:])  # dL/d(pre-activation) of every step
        d_h = d_out[steps - 1]
        for t in reversed(range(steps)):
            _times_tanh_slope(d_pre[t].copy_(d_h), h[t + 1])
            # a_t = ... + h_{t-1} W_hh^T: dL/dh_{t-1} = dL/da_t W_hh + its own output's gradient
            d_h = torch.addmm(d_out[t - 1], d_pre[t], w_hh) if t else d_pre[0] @ w_hh
        return _parameter_grads(ctx, x, w_ih, h, d_pre, d_pre, d_h)


class _LSTMScan(torch.autograd.Function):
    """LSTM over a time-major sequence; parameters in `torch.nn.LSTM`'s gate order ``i, f, g, o``.

    ``i, f, o = σ(a)``, ``g = tanh(a)`` with ``a = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh``;
    ``c_t = f ⊙ c_{t-1} + i ⊙ g``; ``h_t = o ⊙ tanh(c_t)``. Inside, the rows are taken in the
    order ``i, f, o, g`` so that the three sigmoid gates are one contiguous block: one
    operation per step for them, forwards and backwards.
    """

    @staticmethod
    @torch.no_grad()  # already so when called by apply(); torch.export needs it said
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        h0: Tensor,
        c0: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor,
        b_hh: Tensor,
    ) -> tuple[Tensor, Tensor]:
        steps, batch, _ = x.shape
        hidden = w_hh.shape[1]
        order = _sigmoid_gates_first(hidden, x.device)
        w_ih, w_hh = w_ih[order], w_hh[order]
        # the input part of every step's pre-activations in one product
        gates = torch.addmm((b_ih + b_hh)[order], _flat(x), w_ih.t())
        gates = gates.view(steps, batch, 4 * hidden)
        h, c = x.new_empty(2, steps + 1, batch, hidden)
        tanh_c = x.new_empty(steps, batch, hidden)
        h[0], c[0] = h0, c0
        per_step = zip(gates, h[:-1], h[1:], c[:-1], c[1:], tanh_c, strict=True)
        for a_t, h_prev, h_t, c_prev, c_t, tanh_c_t in per_step:
            a_t.addmm_(h_prev, w_hh.t())
            a_t[:, : 3 * hidden].sigmoid_()  # i, f, o
            i, f, o, g = a_t.chunk(4, dim=1)
            torch.mul(f, c_prev, out=c_t).addcmul_(i, g.tanh_())  # c_t = f ⊙ c_{t-1} + i ⊙ g
            torch.mul(o, torch.tanh(c_t, out=tanh_c_t), out=h_t)  # h_t = o ⊙ tanh(c_t)
        ctx.save_for_backward(x, w_ih, w_hh, gates, h, c, tanh_c, order)
        return h[1:], c[steps]

    @staticmethod
    def backward(ctx: FunctionCtx, d_out: Tensor, d_c_last: Tensor) -> tuple[Tensor | None, ...]:
        x, w_ih, w_hh, gates, h, c, tanh_c, order = ctx.saved_tensors
        steps = x.shape[0]
        hidden = w_hh.shape[1]
        d_gates = torch.empty_like(gates)  # dL/d(pre-activations) of i, f, o, g, every step
        # per-step buffers, overwritten in place: no allocation inside the loop
        d_h, d_c, scratch = d_out[steps - 1].clone(), d_c_last.clone(), torch.empty_like(d_c_last)
        for t in reversed(range(steps)):
            i, f, o, g = gates[t].chunk(4, dim=1)
            d_i, d_f, d_o, d_g = d_gates[t].chunk(4, dim=1)
            # h_t = o ⊙ tanh(c_t): dL/do = dL/dh_t ⊙ tanh(c_t),
            # dL/dc_t += dL/dh_t ⊙ o ⊙ (1 - tanh²(c_t)) = dL/dh_t ⊙ o - dL/do ⊙ o ⊙ tanh(c_t)
            torch.mul(d_h, tanh_c[t], out=d_o)
            d_c.addcmul_(d_h, o).addcmul_(torch.mul(d_o, o, out=scratch), tanh_c[t], value=-1)
            # c_t = f ⊙ c_{t-1} + i ⊙ g: dL/di = dL/dc_t ⊙ g, dL/df = dL/dc_t ⊙ c_{t-1}, ...
            torch.mul(d_c, g, out=d_i), torch.mul(d_c, c[t], out=d_f), torch.mul(d_c, i, out=d_g)
            d_c.mul_(f)  # dL/dc_{t-1}
            # from the gates to their pre-activations a_t
            _times_sigmoid_slope(d_gates[t, :, : 3 * hidden], gates[t, :, : 3 * hidden])
            _times_tanh_slope(d_g, g, scratch)
            # a_t = ... + h_{t-1} W_hh^T: dL/dh_{t-1} = dL/da_t W_hh + its own output's gradient
            if t:
                torch.addmm(d_out[t - 1], d_gates[t], w_hh, out=d_h)
            else:
                torch.mm(d_gates[0], w_hh, out=d_h)
        d_x, d_h0, d_c0, *d_weights = _parameter_grads(ctx, x, w_ih, h, d_gates, d_gates, d_h, d_c)
        torch_order = torch.argsort(order)
        return d_x, d_h0, d_c0, *(d[torch_order] for d in d_weights)


def _sigmoid_gates_first(hidden: int, device: torch.device) -> Tensor:
    """Row indices taking `torch.nn.LSTM`'s gate blocks ``i, f, g, o`` as ``i, f, o, g``."""
    blocks = torch.arange(4 * hidden, device=device).view(4, hidden)
    return blocks[[0, 1, 3, 2]].reshape(-1)


class _GRUScan(torch.autograd.Function):
    """GRU over a time-major sequence, gates in `torch.nn.GRU`'s order ``r, z, n``.

    ``r, z = σ(x_t W_i^T + b_i + h_{t-1} W_h^T + b_h)``;
    ``n = tanh(x_t W_in^T + b_in + r ⊙ (h_{t-1} W_hn^T + b_hn))``;
    ``h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}``.
    """

    @staticmethod
    @torch.no_grad()  # already so when called by apply(); torch.export needs it said
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        h0: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor,
        b_hh: Tensor,
    ) -> Tensor:
        steps, batch, _ = x.shape
        hidden = w_hh.shape[1]
        # x_t W_ih^T + b_ih of every step in one product; becomes r, z, n in place
        gates = torch.addmm(b_ih, _flat(x), w_ih.t()).view(steps, batch, 3 * hidden)
        recurrent = torch.empty_like(gates)  # h_{t-1} W_hh^T + b_hh, kept for backward
        h = x.new_empty(steps + 1, batch, hidden)
        h[0] = h0
        for a_t, rec_t, h_prev, h_t in zip(gates, recurrent, h[:-1], h[1:], strict=True):
            torch.addmm(b_hh, h_prev, w_hh.t(), out=rec_t)
            a_t[:, : 2 * hidden].add_(rec_t[:, : 2 * hidden]).sigmoid_()  # r, z
            r, z, n = a_t.chunk(3, dim=1)
            n.addcmul_(r, rec_t[:, 2 * hidden :]).tanh_()
            torch.lerp(n, h_prev, z, out=h_t)  # h_t = n + z ⊙ (h_{t-1} - n)
        ctx.save_for_backward(x, w_ih, w_hh, gates, recurrent, h)
        return h[1:]

    @staticmethod
    def backward(ctx: FunctionCtx, d_out: Tensor) -> tuple[Tensor | None, ...]:
        x, w_ih, w_hh, gates, recurrent, h = ctx.saved_tensors
        steps = x.shape[0]
        hidden = w_hh.shape[1]
        d_input = torch.empty_like(gates)  # dL/d(x_t W_ih^T + b_ih) for r, z, n
        d_recurrent = torch.empty_like(recurrent)  # dL/d(h_{t-1} W_hh^T + b_hh)
        d_h = d_out[steps - 1]
        for t in reversed(range(steps)):
            r, z, n = gates[t].chunk(3, dim=1)
            d_r, d_z, d_n = d_input[t].chunk(3, dim=1)
            # h_t = n + z ⊙ (h_{t-1} - n): dL/dn = dL/dh_t ⊙ (1-z), dL/dz = dL/dh_t ⊙ (h_{t-1} - n)
            _times_tanh_slope(torch.mul(d_h, 1 - z, out=d_n), n)
            _times_sigmoid_slope(torch.mul(d_h, h[t] - n, out=d_z), z)
            # n = tanh(a_n + r ⊙ rec_n): dL/dr = dL/da_n ⊙ rec_n, dL/drec_n = dL/da_n ⊙ r
            _times_sigmoid_slope(torch.mul(d_n, recurrent[t, :, 2 * hidden :], out=d_r), r)
            d_recurrent[t, :, : 2 * hidden] = d_input[t, :, : 2 * hidden]
            torch.mul(d_n, r, out=d_recurrent[t, :, 2 * hidden :])
            # dL/dh_{t-1} = dL/dh_t ⊙ z + dL/drec W_hh + its own output's gradient
            d_direct = torch.addcmul(d_out[t - 1], d_h, z) if t else d_h * z
            d_h = d_direct.addmm_(d_recurrent[t], w_hh)
        return _parameter_grads(ctx, x, w_ih, h, d_input, d_recurrent, d_h)


def _flat(x: Tensor) -> Tensor:
    """``(time, batch, features)`` as ``(time * batch, features)``."""
    return x.reshape(-1, x.shape[-1])


def _times_sigmoid_slope(d: Tensor, s: Tensor) -> Tensor:
    """``d ← d ⊙ s (1 - s)`` in place: the chain rule through ``s = σ(a)``."""
    return d.mul_(s).addcmul_(d, s, value=-1)


def _times_tanh_slope(d: Tensor, y: Tensor, scratch: Tensor | None = None) -> Tensor:
    """``d ← d ⊙ (1 - y²)`` in place: the chain rule through ``y = tanh(a)``; ``scratch``, a
    buffer shaped like ``d``, saves allocating the intermediate ``d ⊙ y``."""
    return d.addcmul_(torch.mul(d, y, out=scratch), y, value=-1)


def _parameter_grads(
    ctx: FunctionCtx,
    x: Tensor,
    w_ih: Tensor,
    h: Tensor,
    d_input: Tensor,
    d_recurrent: Tensor,
    *d_states: Tensor,
) -> tuple[Tensor | None, ...]:
    """A scan's gradients in its argument order ``x, *states, w_ih, w_hh, b_ih, b_hh``.

    ``d_input`` / ``d_recurrent``: ``(time, batch, gates * hidden)`` gradients of
    ``x_t W_ih^T + b_ih`` and ``h_{t-1} W_hh^T + b_hh``; ``d_states``: of the initial states.
    """
    d_in, d_rec = _flat(d_input), _flat(d_recurrent)
    d_x = (d_in @ w_ih).view_as(x) if ctx.needs_input_grad[0] else None
    d_w_ih = d_in.t() @ _flat(x)
    d_w_hh = d_rec.t() @ _flat(h[:-1])
    d_b_ih = d_in.sum(0)
    d_b_hh = d_b_ih.clone() if d_recurrent is d_input else d_rec.sum(0)  # equal for RNN, LSTM
    return d_x, *d_states, d_w_ih, d_w_hh, d_b_ih, d_b_hh


class _Recurrent(nn.Module):
    """Stacked, optionally bidirectional layers around one of the scans above.

    Parameters of layer ``k`` (suffix ``_reverse`` for the backward direction), as in
    `torch.nn`: ``weight_ih_l{k}`` ``(gates * hidden, inputs)``, ``weight_hh_l{k}``
    ``(gates * hidden, hidden)``, ``bias_ih_l{k}`` and ``bias_hh_l{k}`` ``(gates * hidden,)``.
    """

    gates: ClassVar[int]
    scan: ClassVar[type[torch.autograd.Function]]
    torch_type: ClassVar[type[nn.RNNBase]]
    n_states: ClassVar[int] = 1

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bidirectional = num_layers, bidirectional
        directions = ("", "_reverse") if bidirectional else ("",)
        self.scan_names = [f"l{k}{d}" for k in range(num_layers) for d in directions]
        rows = self.gates * hidden_size
        for name in self.scan_names:
            inputs = input_size if name.startswith("l0") else hidden_size * len(directions)
            self.register_parameter(f"weight_ih_{name}", nn.Parameter(torch.empty(rows, inputs)))
            self.register_parameter(
                f"weight_hh_{name}", nn.Parameter(torch.empty(rows, hidden_size))
            )
            self.register_parameter(f"bias_ih_{name}", nn.Parameter(torch.empty(rows)))
            self.register_parameter(f"bias_hh_{name}", nn.Parameter(torch.empty(rows)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """`torch.nn`'s initialisation: every parameter ~ U(-1/√hidden, 1/√hidden)."""
        bound = 1 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    @classmethod
    def from_torch(cls, module: nn.RNNBase) -> _Recurrent:
        """A from-scratch copy of a `torch.nn` layer of the matching kind, weights included."""
        if type(module) is not cls.torch_type:
            raise TypeError(f"{cls.__name__}.from_torch needs a {cls.torch_type.__name__}")
        layer = cls(module.input_size, module.hidden_size, module.num_layers, module.bidirectional)
        layer.load_torch_weights(module)
        return layer.to(next(module.parameters()))

    def load_torch_weights(self, module: nn.RNNBase) -> None:
        """Copy the weights of a `torch.nn` layer configured alike (bias, no projection, tanh)."""
        if not module.bias or module.proj_size or getattr(module, "nonlinearity", "tanh") != "tanh":
            raise ValueError(f"{type(self).__name__} has biases, no projection and tanh only")
        self.load_state_dict(module.state_dict())

    def forward(
        self, x: Tensor, state: tuple[Tensor, ...] | None = None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Run over ``x`` ``(batch, time, inputs)`` from ``state`` (zeros when ``None``)."""
        if x.dim() != 3 or x.shape[2] != self.input_size:
            name, size = type(self).__name__, self.input_size
            raise ValueError(f"{name} expects (batch, time, {size}), got {tuple(x.shape)}")
        if state is None:
            zeros = x.new_zeros(len(self.scan_names), x.shape[0], self.hidden_size)
            state = (zeros,) * self.n_states
        layer_input = x.transpose(0, 1).contiguous()  # time-major: each step is contiguous
        outputs: list[Tensor] = []
        finals: list[tuple[Tensor, ...]] = []
        for index, name in enumerate(self.scan_names):
            reverse = name.endswith("_reverse")
            if outputs and not reverse:  # the next layer reads the previous one's outputs
                layer_input, outputs = torch.cat(outputs, dim=2), []
            weights = [getattr(self, f"{kind}_{name}") for kind in _WEIGHT_KINDS]
            initial = [s[index] for s in state]
            sequence = layer_input.flip(0) if reverse else layer_input
            out, *final = _as_tuple(self.scan.apply(sequence, *initial, *weights))
            outputs.append(out.flip(0) if reverse else out)
            finals.append((out[-1], *final))  # h_T (and c_T)
        output = torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]
        return output.transpose(0, 1), tuple(torch.stack(s) for s in zip(*finals, strict=True))

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}"
        )


_WEIGHT_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _as_tuple(value: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return value if isinstance(value, tuple) else (value,)


class RNN(_Recurrent):
    """Elman RNN with tanh, equal to `torch.nn.RNN(batch_first=True)`; state ``(h,)``."""

    gates, scan, torch_type = 1, _RNNScan, nn.RNN


class LSTM(_Recurrent):
    """LSTM equal to `torch.nn.LSTM(batch_first=True)`; state ``(h, c)``."""

    gates, scan, torch_type, n_states = 4, _LSTMScan, nn.LSTM, 2


class GRU(_Recurrent):
    """GRU equal to `torch.nn.GRU(batch_first=True)`; state ``(h,)``."""

    gates, scan, torch_type = 3, _GRUScan, nn.GRU


class _RecurrentNet(nn.Module):
    """The seed's recurrent networks: a recurrent layer over time, its final hidden state
    (both directions' when bidirectional) -> ``head`` units, ReLU -> ``out_size`` logits."""

    def __init__(
        self,
        in_channels: int,
        out_size: int,
        input_length: int | None = None,
        hidden: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        head: int = 128,
    ) -> None:
        super().__init__()
        self.recurrent = self._recurrent_layer(in_channels, hidden, num_layers, bidirectional)
        self.directions = 2 if bidirectional else 1
        self.head = nn.Sequential(
            nn.Linear(hidden * self.directions, head), nn.ReLU(), nn.Linear(head, out_size)
        )

    @staticmethod
    def _recurrent_layer(
        inputs: int, hidden: int, num_layers: int, bidirectional: bool
    ) -> nn.Module:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, channels, time)`` -> ``(batch, out_size)``."""
        _, (h, *_) = self.recurrent(x.transpose(1, 2))
        last_layer = h[-self.directions :].transpose(0, 1).reshape(x.shape[0], -1)
        return self.head(last_layer)


@register_model
class RNNNet(_RecurrentNet):
    """The seed's RNNNet on the from-scratch `RNN` (tanh)."""

    @staticmethod
    def _recurrent_layer(inputs: int, hidden: int, num_layers: int, bidirectional: bool) -> RNN:
        return RNN(inputs, hidden, num_layers, bidirectional)


@register_model
class LSTMNet(_RecurrentNet):
    """The seed's LSTMNet on the from-scratch `LSTM`."""

    @staticmethod
    def _recurrent_layer(inputs: int, hidden: int, num_layers: int, bidirectional: bool) -> LSTM:
        return LSTM(inputs, hidden, num_layers, bidirectional)


@register_model
class TorchLSTMNet(_RecurrentNet):
    """LSTMNet on `torch.nn.LSTM`."""

    @staticmethod
    def _recurrent_layer(inputs: int, hidden: int, num_layers: int, bidirectional: bool) -> nn.LSTM:
        return nn.LSTM(inputs, hidden, num_layers, batch_first=True, bidirectional=bidirectional)


@register_model
class GRUNet(_RecurrentNet):
    """LSTMNet's shape on the from-scratch `GRU`."""

    @staticmethod
    def _recurrent_layer(inputs: int, hidden: int, num_layers: int, bidirectional: bool) -> GRU:
        return GRU(inputs, hidden, num_layers, bidirectional)
