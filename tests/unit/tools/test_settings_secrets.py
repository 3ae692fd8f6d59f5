"""Secrets mounted as files (config/settings.py, ``secrets_dir``): one file per setting, named
like its environment variable in either case, read after the environment and ``.env``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import SettingsError

from config import settings as settings_module
from config.settings import Settings


@pytest.fixture(autouse=True)
def no_platform_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No /run/secrets and no INVENTORY_* variables of the machine leak into these tests."""
    monkeypatch.setattr(settings_module, "DEFAULT_SECRETS_DIR", tmp_path / "absent")
    monkeypatch.delenv("INVENTORY_SECRETS_DIR", raising=False)
    monkeypatch.delenv("INVENTORY_READ_TOKEN", raising=False)
    monkeypatch.delenv("INVENTORY_WEBHOOK_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env


def secrets(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_text(content)
    return folder


def test_each_file_is_the_setting_named_like_its_variable_in_either_case(tmp_path: Path) -> None:
    folder = secrets(
        tmp_path,
        inventory_read_token="r3ad-token\n",  # the newline an editor or `echo` adds is stripped
        INVENTORY_WEBHOOK_TOKEN="  hook  ",
        inventory_log_format="json",  # any setting, not only secrets
        read_token="not-this-one",  # without the prefix: not a setting
    )
    settings = Settings(secrets_dir=folder)
    assert settings.read_token is not None and settings.read_token.get_secret_value() == "r3ad-token"
    assert settings.webhook_token is not None and settings.webhook_token.get_secret_value() == "hook"
    assert settings.log_format == "json"
    assert settings.secrets_dir == folder
    assert "r3ad-token" not in repr(settings) and "r3ad-token" not in str(settings.model_dump())


def test_the_folder_comes_from_the_environment_and_the_environment_wins_over_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = secrets(tmp_path, inventory_read_token="from-file", inventory_webhook_token="hook-from-file")
    monkeypatch.setenv("INVENTORY_SECRETS_DIR", str(folder))
    monkeypatch.setenv("INVENTORY_READ_TOKEN", "from-env")
    settings = Settings()
    assert settings.secrets_dir == folder
    assert settings.read_token is not None and settings.read_token.get_secret_value() == "from-env"
    assert settings.webhook_token is not None and settings.webhook_token.get_secret_value() == "hook-from-file"


def test_the_folder_can_come_from_the_dotenv_file(tmp_path: Path) -> None:
    folder = secrets(tmp_path, inventory_read_token="t")
    (tmp_path / ".env").write_text(f"INVENTORY_SECRETS_DIR={folder}\n")
    assert Settings().secrets_dir == folder


def test_a_folder_named_but_missing_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="is not a directory"):
        Settings(secrets_dir=tmp_path / "nope")


def test_the_platform_folder_is_read_only_when_it_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().secrets_dir is None
    assert Settings().read_token is None
    platform = secrets(tmp_path, inventory_read_token="mounted")
    monkeypatch.setattr(settings_module, "DEFAULT_SECRETS_DIR", platform)
    settings = Settings()
    assert settings.secrets_dir == platform
    assert settings.read_token is not None and settings.read_token.get_secret_value() == "mounted"
