"""trader.toml checked once, up front, for every command: credentials anywhere, unknown keys in the
sections the core owns, nan, thread counts, encoding; credentials from the environment masked."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_trader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.config import exchange_credentials, load_config
from trader.config_rules import CORE_KEYS, looks_like_credential, usable_cores
from trader.errors import ConfigError

CREDENTIALS = ["apiKey", "secret", "password", "token", "uid", "privateKey", "walletAddress", "twofa", "login"]
BENIGN = ["buy_threshold", "sell_threshold", "position_size", "liquidity", "fee_bps", "epochs", "seed", "lookback",
          "hidden_size", "rebalance_band", "urls", "options", "timeout", "enableRateLimit", "keys_per_batch"]


def _load(home: Path, text: str | bytes):
    path = home / "trader.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load_config(home=home)


def _one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _spellings(name: str):
    """``apiKey`` as a user might write it: any case, ``_``/``-``/space between its words, padded."""
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).split()
    return st.tuples(
        st.lists(st.sampled_from(["lower", "upper", "title"]), min_size=len(words), max_size=len(words)),
        st.sampled_from(["", "_", "-", " "]),
        st.sampled_from(["", " ", "x_", "my-", "exchange_"]),
        st.sampled_from(["", " ", "_2", "_value"]),
    ).map(lambda t: t[2] + t[1].join(getattr(w, case)() for w, case in zip(words, t[0], strict=True)) + t[3])


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_credential_is_refused_wherever_and_however_it_is_spelled(tmp_path, data):
    name = data.draw(st.sampled_from(CREDENTIALS).flatmap(_spellings))
    where = data.draw(st.sampled_from(['[exchange.ccxt]', '[exchange.ccxt.options]', '[plugins.dl_lstm]',
                                       '[plugins.dl_lstm.train]', '[broker]', '[data]']))
    home = tmp_path / "h"
    home.mkdir(exist_ok=True)
    with pytest.raises(ConfigError) as caught:
        _load(home, f'{where}\n"{name}" = "abc123"\n')
    message = str(caught.value)
    assert "looks like a credential" in message and "TRADER_API_KEY" in message
    assert where.strip("[]") in message


@given(st.sampled_from(BENIGN + [k for keys in CORE_KEYS.values() for k in keys]))
def test_ordinary_settings_do_not_look_like_credentials(name):
    assert not looks_like_credential(name)


@pytest.mark.parametrize("header", ["X-MBX-APIKEY", "Authorization", "OK-ACCESS-PASSPHRASE", "Cookie", "X-Auth-Token", "KC-API-SIGN"])
def test_any_header_that_could_carry_a_key_is_refused(trader_home, header):
    (trader_home / "trader.toml").write_text(f'[exchange]\nid = "binance"\n[exchange.ccxt.headers]\n"{header}" = "k"\n')
    result = run_trader("data", "list", home=trader_home)
    assert result.returncode == 2
    assert f'exchange.ccxt.headers.{header}' in _one_line(result) and "credential" in result.stderr


def test_every_command_refuses_credentials_in_the_config(trader_home):
    (trader_home / "trader.toml").write_text('[plugins.dl_lstm]\nwalletAddress = "0xabc"\n')
    for args in (["plugins"], ["data", "list"], ["status"], ["models", "list"]):
        result = run_trader(*args, home=trader_home)
        assert result.returncode == 2, (args, result.stderr)
        assert "plugins.dl_lstm.walletAddress looks like a credential" in _one_line(result)
        assert "0xabc" not in result.stderr + result.stdout


@pytest.mark.parametrize(("toml", "expected"), [
    ("[broker]\nfee_bsp = 5\n", "unknown key fee_bsp in [broker]; did you mean 'fee_bps'?"),
    ("[engine]\nrebalance_bnd = 0.2\n", "unknown key rebalance_bnd in [engine]; did you mean 'rebalance_band'?"),
    ("[exchange]\nidd = 'binance'\n", "unknown key idd in [exchange]; did you mean 'id'?"),
    ("[brokers]\nfee_bps = 5\n", "unknown key brokers in the top level; did you mean 'broker'?"),
    ("[data]\nmax_fill_bar = 5\n", "unknown key max_fill_bar in [data]; did you mean 'max_fill_bars'?"),
    ("[plugins.x.risk]\nmax_drawdwn = 0.1\n", "unknown key max_drawdwn in [plugins.x.risk]; did you mean 'max_drawdown'?"),
    ("[broker]\ncash = inf\n", "broker.cash must be a finite number, got inf"),
    ("[broker]\ncash = nan\n", "broker.cash = nan is not a usable setting"),
    ("[plugins.x]\nposition_size = nan\n", "plugins.x.position_size = nan is not a usable setting"),
    ("[data]\nmax_import_rows = 0\n", "data.max_import_rows must be a positive whole number, got 0"),
    ("[plugins.x]\ninference_threads = 0\n", "plugins.x.inference_threads must be a positive whole number of threads, got 0"),
])
def test_config_mistakes_are_one_line_before_the_command_runs(trader_home, toml, expected):
    (trader_home / "trader.toml").write_text(toml)
    result = run_trader("data", "list", home=trader_home)
    assert result.returncode == 2
    assert _one_line(result) == f"Error: {trader_home / 'trader.toml'}: {expected}"


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=st.sampled_from([s for s in CORE_KEYS if s]), key=st.from_regex(r"[a-z][a-z_]{0,20}", fullmatch=True))
def test_a_core_section_accepts_exactly_its_keys(tmp_path, section, key):
    home = tmp_path / "h"
    home.mkdir(exist_ok=True)
    value = "'binance'" if key == "id" else "{}" if key == "ccxt" else "1"
    text = f"[{'.'.join(section)}]\n{key} = {value}\n"
    if key in CORE_KEYS[section] or looks_like_credential(key):
        if looks_like_credential(key):
            with pytest.raises(ConfigError, match="looks like a credential"):
                _load(home, text)
        else:
            _load(home, text)
    else:
        with pytest.raises(ConfigError, match=f"unknown key {key} in \\[{'.'.join(section)}\\]"):
            _load(home, text)


def test_the_engine_keys_of_the_run_loop_are_valid(trader_home):
    config = _load(trader_home, "[engine]\nrebalance_band = 0.2\nsignal_timeout_s = 5\nworker_start_timeout_s = 60\n")
    assert config.section("engine")["signal_timeout_s"] == 5


def test_thread_counts_are_capped_at_the_cores(trader_home, caplog):
    with caplog.at_level(logging.WARNING, logger="trader.config"):
        config = _load(trader_home, "[plugins.dl_lstm]\ninference_threads = 100000\n[plugins.ensemble.train]\nthreads = 1\n")
    assert config.plugin_params("dl_lstm")["inference_threads"] == usable_cores()
    assert config.section("plugins", "ensemble", "train")["threads"] == 1
    assert f"inference_threads = 100000 is more than the {usable_cores()} CPU cores" in caplog.text


def test_a_config_that_is_not_utf8_is_one_line(trader_home):
    (trader_home / "trader.toml").write_bytes(b'[exchange]\nid = "bin\xe9nce"\n')
    result = run_trader("plugins", home=trader_home)
    assert result.returncode == 2
    assert _one_line(result) == f"Error: {trader_home / 'trader.toml'}: not UTF-8 text (byte 21, line 2); save it as UTF-8"


def test_whitespace_only_keys_count_as_missing_and_do_not_mangle_logs(trader_home, monkeypatch):
    from trader.log import mask_secrets

    monkeypatch.setenv("TRADER_API_KEY", "   ")
    monkeypatch.setenv("TRADER_API_SECRET", "\t")
    assert exchange_credentials() == {}
    assert mask_secrets("a message with spaces") == "a message with spaces"
    result = run_trader("run", "--plugin", "buy_and_hold", "--feed", "live", "--live", home=trader_home,
                        env={"TRADER_API_KEY": "   ", "TRADER_API_SECRET": " "})
    assert result.returncode == 2
    assert _one_line(result).startswith("Error: --live needs API keys in the environment")


def test_ccxt_verbose_output_is_masked_on_every_channel_and_file(tmp_path):
    """``[exchange.ccxt] verbose = true`` on a live run: ccxt's signed requests are shown on stderr
    through the masking logger, and the key appears in no output and no file."""
    from trader.data import synthetic_candles
    from trader.testing.fake_binance import FakeBinance, toml_for_ccxt

    home = tmp_path / "home"
    home.mkdir()
    key, secret = "vk-7f3e9a1c5b", "vs-2d8c4e6f0a"
    minute = 60_000
    df = synthetic_candles("BTC/USDT", "1m", 300, 1)
    last_closed = (int(time.time() * 1000) // minute - 1) * minute
    df["timestamp"] = last_closed - (len(df) - 1 - np.arange(len(df), dtype=np.int64)) * minute
    with FakeBinance(df, balances={"USDT": 10_000}) as server:
        (home / "trader.toml").write_text(toml_for_ccxt(server.ccxt_options(timeout=3000, verbose=True)))
        result = run_trader("run", "--plugin", "buy_and_hold", "--feed", "live", "--live", "--timeframe", "1m",
                            "--max-candles", "1", "--cash", "10000", home=home,
                            env={"TRADER_API_KEY": key, "TRADER_API_SECRET": secret}, timeout=90)
        assert result.returncode == 0, result.stderr[-2000:]
        assert server.requests_to("/api/v3/order", "POST"), "the run must have sent a signed order"
    assert "fetch Request" in result.stderr and "X-MBX-APIKEY" in result.stderr and "***" in result.stderr
    assert "fetch Request" not in result.stdout  # ccxt printed to stdout; now it goes through the logger
    for text in (result.stdout, result.stderr):
        assert key not in text and secret not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert key.encode() not in data and secret.encode() not in data, path


def test_masking_covers_tracebacks_and_url_encoding(monkeypatch):
    import io

    from trader.log import configure_logging

    monkeypatch.setenv("TRADER_API_KEY", "k+y/1=")
    stream = io.StringIO()
    configure_logging(stream=stream)
    log = logging.getLogger("trader.test")
    try:
        raise RuntimeError("signed with k+y/1=")
    except RuntimeError:
        log.exception("url ?key=k%2By%2F1%3D and k+y/1=")
    configure_logging()
    text = stream.getvalue()
    assert "k+y/1=" not in text and "k%2By%2F1%3D" not in text
    assert "url ?key=*** and ***" in text and "RuntimeError: signed with ***" in text


def test_config_limit_and_missing_file_stay_one_line(trader_home):
    (trader_home / "trader.toml").write_bytes(b"#" * (2 << 20))
    result = run_trader("plugins", home=trader_home)
    assert result.returncode == 2 and "larger than 1,048,576 bytes" in _one_line(result)
    assert os.path.getsize(trader_home / "trader.toml") == 2 << 20


def test_a_section_that_is_not_a_table_names_where_it_came_from_without_a_trader_toml(tmp_path):
    from trader.config import TraderConfig
    from trader.errors import ConfigError

    settings = TraderConfig(home=tmp_path, data={"plugins": {"x": {"tune": 3}}})  # built in code, no file
    with pytest.raises(ConfigError, match=r"^the settings of .+ \(no trader\.toml\): \[plugins\.x\.tune\] must be a table$"):
        settings.section("plugins", "x", "tune")
