"""The README's table of every setting (config/settings_doc.py) is generated and in step."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import settings_doc
from config.settings import REPO_ROOT, Settings


def test_the_readme_table_is_in_step_with_the_settings() -> None:
    readme = settings_doc.README.read_text(encoding="utf-8")
    assert settings_doc.render(readme) == readme, "run: python -m config.settings_doc"


def test_every_setting_has_a_row_with_its_variable() -> None:
    table = settings_doc.table()
    for name in Settings.model_fields:
        assert f"| `{name}` | `INVENTORY_{name.upper()}` |" in table


def test_every_setting_is_described() -> None:
    """Every field has a description: the table is the reference a deployer reads."""
    missing = {row.name for row in settings_doc.rows() if not row.description}
    assert not missing, f"add a description= to {sorted(missing)}"


def test_secrets_show_no_default_and_paths_are_relative_to_the_checkout() -> None:
    rows = {row.name: row for row in settings_doc.rows()}
    assert rows["read_token"].default == rows["webhook_token"].default == ""
    assert rows["read_token"].type == "secret (optional)"
    assert rows["local_dir"].default == "`<repo>/.local`"
    assert str(REPO_ROOT) not in settings_doc.table()  # the same table in every checkout


def test_types_are_written_the_way_the_environment_takes_them() -> None:
    rows = {row.name: row for row in settings_doc.rows()}
    assert rows["partitions"].type == "integer"
    assert rows["outbox_topics"].type == "JSON list of string"
    assert rows["log_format"].type == "`plain` \\| `json`"
    assert rows["debug_views"].default == "`false`"
    assert rows["topic_prefix"].default == '`""`'
    assert rows["log_level"].section.startswith("Operations")


def test_check_fails_on_a_stale_table_and_the_generator_fixes_it(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(f"# x\n\n{settings_doc.BEGIN}\n| old |\n{settings_doc.END}\nrest\n", encoding="utf-8")
    assert settings_doc.main(["--check", "--file", str(stale)]) == 1
    assert settings_doc.main(["--file", str(stale)]) == 0
    assert settings_doc.main(["--check", "--file", str(stale)]) == 0
    text = stale.read_text(encoding="utf-8")
    assert text.startswith("# x\n\n") and text.endswith(f"{settings_doc.END}\nrest\n") and "| old |" not in text


def test_a_file_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        settings_doc.render("# no table here\n")


def test_the_env_example_names_real_settings_with_valid_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = (REPO_ROOT / ".env.example").read_text(encoding="utf-8")
    lines = [line[2:] for line in example.splitlines() if line.startswith("# INVENTORY_")]
    names = {line.split("=", 1)[0].removeprefix("INVENTORY_").lower() for line in lines}
    assert not names - set(Settings.model_fields), "not settings"
    # Uncommented, the example is a valid configuration (placeholders and all).
    monkeypatch.chdir(tmp_path)

    def mounted(line: str) -> str:
        name, _, value = line.partition("=")
        if name == "INVENTORY_SECRETS_DIR":
            return f"{name}={tmp_path}"
        if name.startswith("INVENTORY_SSL_") and name.endswith("_FILE"):  # files the settings check exist
            placeholder = tmp_path / Path(value.split()[0]).name
            placeholder.write_text("placeholder\n", encoding="utf-8")
            return f"{name}={placeholder}"
        return line

    (tmp_path / ".env").write_text("\n".join(map(mounted, lines)) + "\n", encoding="utf-8")
    settings = Settings()
    assert settings.log_format == "json" and settings.partitions == 12
    assert settings.outbox_topics == ("oms.outbox.order",)
