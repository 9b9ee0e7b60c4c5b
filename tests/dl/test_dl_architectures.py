"""The networks: shapes, validated hyperparameters, and the Transformer's causality."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from trader_dl_lstm.model import BiLSTMClassifier
from trader_dl_transformer.model import TransformerClassifier

torch.set_num_threads(1)


def test_bilstm_defaults_and_output_shape():
    model = BiLSTMClassifier()
    assert model.architecture() == {
        "class": "BiLSTMClassifier", "input_size": 86, "hidden_size": 128, "num_layers": 1, "dropout": 0.2,
        "num_classes": 2, "head_hidden": 64, "bidirectional": True,
    }
    assert model.lstm.bidirectional and model.lstm.hidden_size == 128
    assert model(torch.randn(3, 20, 86)).shape == (3, 2)
    assert BiLSTMClassifier(input_size=5, hidden_size=8, num_layers=2, num_classes=3)(torch.randn(2, 7, 5)).shape == (2, 3)


def test_transformer_output_shape_and_configurable_sizes():
    model = TransformerClassifier(input_size=10, d_model=32, nhead=4, num_layers=3, dim_feedforward=48)
    assert model(torch.randn(4, 15, 10)).shape == (4, 2)
    assert model.forward_sequence(torch.randn(4, 15, 10)).shape == (4, 15, 2)
    assert len(model.encoder.layers) == 3
    layer = model.encoder.layers[0]
    assert layer.norm_first  # pre-norm
    assert layer.linear1.out_features == 48 and layer.self_attn.num_heads == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"input_size": 0}, "input_size"),
    ({"d_model": 30, "nhead": 4}, "divisible"),
    ({"dropout": 1.5}, "dropout"),
    ({"num_classes": 1}, "num_classes"),
])
def test_transformer_refuses_invalid_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TransformerClassifier(**kwargs)


def test_bilstm_refuses_invalid_hyperparameters():
    with pytest.raises(ValueError, match="hidden_size"):
        BiLSTMClassifier(hidden_size=0)
    with pytest.raises(ValueError, match="head_hidden"):
        BiLSTMClassifier(head_hidden=-1)


@pytest.mark.parametrize("t", [0, 5, 18])
def test_transformer_output_at_step_t_ignores_inputs_after_t(t):
    torch.manual_seed(t)
    model = TransformerClassifier(input_size=6, d_model=16, nhead=2, num_layers=2, dim_feedforward=32).eval()
    x = torch.randn(3, 20, 6)
    changed = x.clone()
    changed[:, t + 1 :] = torch.randn(3, 20 - t - 1, 6) * 5
    with torch.inference_mode():
        before, after = model.forward_sequence(x), model.forward_sequence(changed)
    torch.testing.assert_close(before[:, : t + 1], after[:, : t + 1], rtol=0, atol=1e-6)
    if t < 19:
        assert not torch.allclose(before[:, t + 1 :], after[:, t + 1 :])  # later steps do see the change
    # the classifier's output for a window ending at t is the sequence output at t
    with torch.inference_mode():
        torch.testing.assert_close(model(x[:, : t + 1]), before[:, t], rtol=1e-5, atol=1e-5)


def test_causal_mask_blocks_every_future_step():
    mask = TransformerClassifier(input_size=2, d_model=8, nhead=2).causal_mask(4)
    assert torch.isinf(mask[torch.triu(torch.ones(4, 4, dtype=torch.bool), diagonal=1)]).all()
    assert (mask[torch.tril(torch.ones(4, 4, dtype=torch.bool))] == 0).all()


def test_positional_encoding_is_fixed_data_not_a_weight():
    model = TransformerClassifier(input_size=3, d_model=8, nhead=2)
    assert not any("pe" in name for name in model.state_dict())
    pe = model.positional_encoding.pe
    assert torch.allclose(pe[0, 0::2], torch.zeros(4)) and torch.allclose(pe[0, 1::2], torch.ones(4))


def test_plugin_entry_modules_import_no_heavy_library():
    code = (
        "import sys, trader_dl_lstm, trader_dl_transformer\n"
        "trader_dl_lstm.plugin.trader_strategy_info(); trader_dl_transformer.plugin.trader_strategy_info()\n"
        "print(','.join(m for m in ('torch', 'numpy', 'pandas', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""


def test_strategy_info_covers_feature_warmup_and_window():
    import trader_dl_lstm
    from trader.features import FeatureEngineer, feature_count

    info = trader_dl_lstm.plugin.trader_strategy_info()
    assert info.requires_model and info.feature_windows == (5, 10, 20, 50)
    assert feature_count(len(info.feature_windows)) == 86
    assert info.warmup_bars == FeatureEngineer(windows=info.feature_windows).warmup_bars + trader_dl_lstm.DEFAULT_SEQUENCE_LENGTH - 1
