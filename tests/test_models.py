"""Every registered model: build, forward, backward, export; seeds; hyperparameter errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from physiodl.errors import RecipeError
from physiodl.models import build_model, list_models, model_class
from physiodl.models.recurrent import LSTM
from physiodl.models.registry import model_hparams

# (in_channels, time) each model is tested with: 17 spectrogram frequencies, 1 raw lead, or
# 4 peak-finding features over bins (an odd length: the convolutional ones pad and crop)
SIGNAL_SHAPES = {
    "CRNN": (17, 20),
    "ConvNet": (17, 20),
    "ConvDenseNet": (5, 200),
    "FullyConnectedNet": (17, 20),
    "GRUNet": (17, 20),
    "LSTMNet": (17, 20),
    "MeanSpectrumNet": (17, 20),
    "PeakBiLSTM": (4, 50),
    "PeakCNN": (4, 70),
    "PeakRCNN": (4, 70),
    "RNNNet": (17, 20),
    "ResNet1d": (1, 600),
    "SpectralConvNet": (5, 200),
    "SpectralPeak": (5, 200),
    "TorchLSTMNet": (17, 20),
    "UNet1d": (4, 70),
}
# models that score rate bins: 8 s windows at 25 Hz, bins 40..60 bpm (21 outputs)
RATE_BINS = {"fs": 25.0, "bin_low": 40.0, "bin_high": 60.0}
BINNED = {"SpectralConvNet", "SpectralPeak"}
# models without trainable parameters (nothing to train, nothing seeded), with the reason
NO_PARAMETERS = {"SpectralPeak": "the classical baseline learns nothing"}
# models that torch.export cannot trace, with the reason
EXPORT_SKIPS: dict[str, str] = {}
BATCH, OUT_SIZE = 3, 2


def _build(name: str, seed: int = 0, **hparams: object) -> tuple[nn.Module, torch.Tensor]:
    if name not in SIGNAL_SHAPES:
        pytest.fail(f"add the new model {name!r} to SIGNAL_SHAPES in {__file__}")
    channels, length = SIGNAL_SHAPES[name]
    torch.manual_seed(seed)
    out_size = 1 if _per_bin(name) else 21 if name in BINNED else OUT_SIZE
    extra = RATE_BINS if name in BINNED else {}
    model = build_model(
        name, in_channels=channels, out_size=out_size, input_length=length, **extra, **hparams
    )
    return model, torch.randn(BATCH, channels, length, generator=torch.Generator().manual_seed(7))


@pytest.mark.filterwarnings("ignore:The tensor attributes .*_flat_weights")  # nn.LSTM internals
@pytest.mark.parametrize("name", list_models())
def test_model_forward_backward_export(name: str) -> None:
    model, x = _build(name)
    output = model(x)
    if _per_bin(name):
        assert output.shape == (BATCH, x.shape[-1])
    else:
        assert output.shape == (BATCH, 21 if name in BINNED else OUT_SIZE)
    assert output.dtype == torch.float32
    if name in NO_PARAMETERS:
        assert not list(model.parameters()), NO_PARAMETERS[name]
    else:
        _check_gradients(model, output)

    if name in EXPORT_SKIPS:
        pytest.skip(f"torch.export: {EXPORT_SKIPS[name]}")
    model.eval()
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x), atol=1e-5, rtol=1e-5)


def _check_gradients(model: nn.Module, output: torch.Tensor) -> None:
    output.square().sum().backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
    assert sum(p.grad.abs().sum() for p in model.parameters()) > 0


@pytest.mark.parametrize("name", list_models())
def test_same_seed_same_model_and_outputs(name: str) -> None:
    if name in NO_PARAMETERS:
        pytest.skip(f"no parameters to seed: {NO_PARAMETERS[name]}")
    first, x = _build(name, seed=3)
    second, _ = _build(name, seed=3)
    other, _ = _build(name, seed=4)
    for model in (first, second, other):
        model.eval()
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value, atol=0, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(first(x), second(x), atol=0, rtol=0)
        assert not torch.equal(first(x), other(x))


def _per_bin(name: str) -> bool:
    """Detection models give one score per bin, ``(batch, time)``."""
    return getattr(model_class(name), "per_bin", False)


# per-bin models whose outputs see the whole sequence by design, with the reason
GLOBAL_CONTEXT = {"PeakBiLSTM": "a bidirectional LSTM", "PeakRCNN": "a BiLSTM at its core"}


@pytest.mark.parametrize("name", [n for n in list_models() if _per_bin(n)])
def test_per_bin_models_keep_each_bin_local(name: str) -> None:
    """A per-bin output at the start does not depend on inputs far away at the end (no
    global pooling), and the models refuse a per-class output size."""
    with pytest.raises(RecipeError, match="one score per bin"):
        build_model(name, in_channels=4, out_size=3)
    if name in GLOBAL_CONTEXT:
        pytest.skip(f"{name} has {GLOBAL_CONTEXT[name]}")
    model, _ = _build(name)
    model.eval()
    x = torch.randn(1, 4, 400, generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[..., -50:] += 5.0
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, :100], model(changed)[:, :100])
        assert not torch.allclose(model(x)[:, -50:], model(changed)[:, -50:])


def test_recurrent_peak_models_match_with_either_lstm() -> None:
    """PeakBiLSTM on the from-scratch LSTM equals it on torch.nn.LSTM with copied weights."""
    torch.manual_seed(0)
    torch_net = build_model("PeakBiLSTM", in_channels=4, out_size=1, hidden=8, recurrent="torch")
    scratch = build_model("PeakBiLSTM", in_channels=4, out_size=1, hidden=8, recurrent="scratch")
    scratch.load_state_dict(torch_net.state_dict())
    x = torch.randn(2, 4, 30)
    with torch.no_grad():
        torch.testing.assert_close(scratch(x), torch_net(x), atol=1e-5, rtol=1e-5)


def test_unet_patch_folds_neighbouring_bins() -> None:
    """With patch > 1 the output still has one score per input bin, for any length."""
    model = build_model("UNet1d", in_channels=4, out_size=1, widths=(4, 8), patch=4)
    for length in (64, 65, 127):
        assert model(torch.randn(2, 4, length)).shape == (2, length)


def test_unknown_hyperparameter_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match=r"'LSTMNet' has no hyperparameter 'hiden'.*hidden"):
        build_model("LSTMNet", in_channels=17, out_size=1, hiden=64)


def test_hyperparameters_and_defaults_are_the_seeds() -> None:
    assert model_hparams("LSTMNet") == {
        "hidden": 128,
        "num_layers": 1,
        "bidirectional": False,
        "head": 128,
    }
    fc = build_model("FullyConnectedNet", in_channels=17, out_size=1, input_length=40)
    assert [m.in_features for m in fc.modules() if isinstance(m, nn.Linear)] == [680, 512, 256]
    conv = build_model("ConvNet", in_channels=17, out_size=1)
    kinds = [type(m).__name__ for m in conv.net]
    assert kinds[:8] == [
        "Conv1d",
        "ReLU",
        "AvgPool1d",
        "Conv1d",
        "ReLU",
        "AvgPool1d",
        "Conv1d",
        "ReLU",
    ]
    assert [m.out_channels for m in conv.net if isinstance(m, nn.Conv1d)] == [32, 64, 128]
    assert isinstance(build_model("LSTMNet", in_channels=17, out_size=1).recurrent, LSTM)
    assert isinstance(build_model("TorchLSTMNet", in_channels=17, out_size=1).recurrent, nn.LSTM)
    resnet = build_model("ResNet1d", in_channels=1, out_size=4)
    assert 0.5e6 <= sum(p.numel() for p in resnet.parameters()) <= 1e6


def test_signal_parameters_a_model_cannot_work_with_are_recipe_errors() -> None:
    with pytest.raises(RecipeError, match=r"FullyConnectedNet .*needs input_length"):
        build_model("FullyConnectedNet", in_channels=17, out_size=1)
    with pytest.raises(RecipeError, match="at least 18 steps, got input_length=12"):
        build_model("ConvNet", in_channels=17, out_size=1, input_length=12)
    fc = build_model("FullyConnectedNet", in_channels=17, out_size=1, input_length=40)
    with pytest.raises(ValueError, match=r"built for inputs \(batch, 17, 40\), got \(2, 17, 41\)"):
        fc(torch.zeros(2, 17, 41))


def test_lstmnet_equals_torchlstmnet_with_the_same_weights() -> None:
    torch.manual_seed(5)
    torch_net = build_model("TorchLSTMNet", in_channels=17, out_size=1, bidirectional=True)
    scratch_net = build_model("LSTMNet", in_channels=17, out_size=1, bidirectional=True)
    scratch_net.load_state_dict(torch_net.state_dict())
    x = torch.randn(4, 17, 30)
    torch.testing.assert_close(scratch_net(x), torch_net(x), atol=1e-5, rtol=0)


def test_mean_spectrum_net_ignores_the_order_of_frames() -> None:
    model = build_model("MeanSpectrumNet", in_channels=17, out_size=3)
    x = torch.randn(2, 17, 40)
    shuffled = x[:, :, torch.randperm(40)]
    torch.testing.assert_close(model(shuffled), model(x), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(("name", "channels", "lengths"), [
    ("ResNet1d", 1, (300, 4500, 6001)),
    ("CRNN", 17, (1, 7, 321)),
    ("MeanSpectrumNet", 17, (1, 321)),
    ("LSTMNet", 17, (1, 321)),
])  # fmt: skip
def test_whole_recording_models_take_any_length(
    name: str, channels: int, lengths: tuple[int, ...]
) -> None:
    model = build_model(name, in_channels=channels, out_size=4).eval()
    with torch.no_grad():
        for length in lengths:
            assert model(torch.randn(2, channels, length)).shape == (2, 4)


def test_registry_names_are_the_classes() -> None:
    assert all(model_class(name).__name__ == name for name in list_models())
    assert list_models("*lstm*") == ["LSTMNet", "PeakBiLSTM", "TorchLSTMNet"]


def test_resnet_recurrent_head_reads_the_last_stage_steps_in_order() -> None:
    torch.manual_seed(0)
    model = build_model("ResNet1d", in_channels=2, out_size=4, recurrent=8).eval()
    assert isinstance(model.recurrent, nn.GRU) and model.head[1].in_features == 16
    steps = torch.randn(1, 192, 9)
    reversed_steps = steps.flip(2)
    with torch.no_grad():
        for length in (300, 4500):
            assert model(torch.randn(3, 2, length)).shape == (3, 4)
        pooled = [
            model.head(model.recurrent(s.transpose(1, 2))[0].mean(1))
            for s in (steps, reversed_steps)
        ]
    assert not torch.allclose(pooled[0], pooled[1])  # order matters, unlike a plain mean


def test_resnet_meanmax_pool_keeps_a_brief_event_that_the_mean_dilutes() -> None:
    model = build_model("ResNet1d", in_channels=1, out_size=2, pool="meanmax").eval()
    assert model.head[1].in_features == 2 * 192
    steps = torch.zeros(1, 192, 40)
    steps[0, 5, 17] = 4.0  # one step of one feature fires
    model.features = nn.Identity()
    with torch.no_grad():
        model.head[1].weight.zero_()
        model.head[1].bias.zero_()
        model.head[1].weight[0, 192 + 5] = 1.0  # reads the maximum of feature 5
        model.head[1].weight[1, 5] = 1.0  # reads its mean
        logits = model(steps)
    assert logits[0].tolist() == pytest.approx([4.0, 0.1])
    with pytest.raises(ValueError, match="pool = 'median'"):
        build_model("ResNet1d", in_channels=1, out_size=2, pool="median")
