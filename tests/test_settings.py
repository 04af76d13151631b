"""Settings layering: defaults < config file < MEDLENS_* env < flags; bad values are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from medlens.errors import MedLensError
from medlens.settings import Settings, settings_reference


def test_layers_override_in_order(tmp_path: Path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("port = 9000\nmax_batch = 4\nallow_private = true\n")
    env = {"MEDLENS_MAX_BATCH": "8", "MEDLENS_CONNECT_TIMEOUT_S": "1.5"}
    s = Settings.load(overrides={"max_batch": 32, "host": None}, env=env, config_file=cfg)
    assert (s.port, s.max_batch, s.allow_private, s.connect_timeout_s, s.host) == (9000, 32, True, 1.5, "127.0.0.1")


def test_defaults_without_any_layer(tmp_path: Path):
    s = Settings.load(env={"MEDLENS_CONFIG_DIR": str(tmp_path)})
    assert s == Settings(config_dir=str(tmp_path))


@pytest.mark.parametrize(
    "env, needle",
    [({"MEDLENS_PORT": "eighty"}, "port"), ({"MEDLENS_TOKEN_REQUIRED": "maybe"}, "token_required")],
)
def test_bad_values_are_named(env, needle, tmp_path: Path):
    with pytest.raises(MedLensError) as err:
        Settings.load(env={**env, "MEDLENS_CONFIG_DIR": str(tmp_path)})
    assert needle in err.value.message


def test_unknown_key_and_broken_config_file(tmp_path: Path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("colour = 'blue'\n")
    with pytest.raises(MedLensError, match="unknown setting 'colour'"):
        Settings.load(env={}, config_file=cfg)
    cfg.write_text("port = = 3")
    with pytest.raises(MedLensError, match="not valid TOML"):
        Settings.load(env={}, config_file=cfg)


def test_every_setting_is_documented():
    table = settings_reference()
    for name in Settings.__dataclass_fields__:
        assert f"`{name}`" in table
