"""``LocalService``, the local stack's one lifecycle, on a stand-in server (Python's http.server
on a free port): start, a second start, status and its exit code, stop, a server that dies
during startup, one that ignores SIGTERM, and a port somebody else holds."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from config.settings import Settings
from streams.local_process import LocalService, LocalServiceError, ServicePaths, Under, port_open

SERVER = ["-m", "http.server", "--bind", "127.0.0.1"]


class FakePaths(ServicePaths):
    folder = "fake"
    log = Under("logs", "fake.log")
    out = Under("logs", "fake.out")
    pid_file = Under("fake.pid")


class FakeService(LocalService):
    name, module, title, noun, description = "fake", "tests.fake", "fake", "fake server", "A fake."
    Paths, poll_s, stop_timeout_s = FakePaths, 0.05, 1.0
    port_setting, timeout_setting = "registry_port", "registry_start_timeout_s"
    command: list[str] = SERVER

    def address(self, settings: Settings) -> str:
        return f"127.0.0.1:{settings.registry_port}"

    def label(self, settings: Settings) -> str:
        return "Fake 1.0"

    def ready(self, settings: Settings, timeout: float = 3.0) -> bool:
        return port_open("127.0.0.1", settings.registry_port)

    def owns(self, settings: Settings, argv: list[str]) -> bool:
        return str(FakePaths.of(settings).root) in argv

    def prepare(self, settings: Settings) -> tuple[list[str], Mapping[str, str] | None]:
        root = str(FakePaths.of(settings).root)
        return [sys.executable, *self.command, "--directory", root, str(settings.registry_port)], None


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Settings(local_dir=tmp_path, registry_port=port, registry_start_timeout_s=20)


@pytest.fixture
def service(settings: Settings) -> Iterator[FakeService]:
    service = FakeService()
    yield service
    for proc in service.children.values():
        proc.kill()
        proc.wait()


def test_start_status_stop(service: FakeService, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert service.start(settings)
    pid = service.managed_pid(settings)
    assert pid is not None and service.is_running(settings)
    assert not service.start(settings)
    assert f"a fake server already answers on 127.0.0.1:{settings.registry_port} (pid {pid})" in capsys.readouterr().out
    assert service.status(settings)
    assert capsys.readouterr().out.startswith("local fake: running\n  pid:")
    assert service.stop(settings)
    assert not service.is_running(settings) and not FakePaths.of(settings).pid_file.exists()
    assert not service.stop(settings)
    assert "not running: no pid file" in capsys.readouterr().out


def test_status_exits_3_when_not_running_and_help_starts_nothing(
    service: FakeService, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setattr("streams.local_process.get_settings", lambda: settings)
    assert service.main(["status"]) == 3
    with pytest.raises(SystemExit) as exited:
        service.main(["start", "--help"])
    assert exited.value.code == 0 and not service.children


def test_a_server_that_dies_during_startup_is_reported_with_its_output(
    service: FakeService, settings: Settings
) -> None:
    service.command = ["-c", "import sys; print('no such option', sys.argv[1:]); sys.exit(2)"]
    with pytest.raises(LocalServiceError, match="exited during startup") as failed:
        service.start(settings)
    assert "no such option" in str(failed.value) and "fake.out" in str(failed.value)
    assert not FakePaths.of(settings).pid_file.exists()


def test_a_server_that_ignores_sigterm_is_killed(
    service: FakeService, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    service.command = [
        "-c",
        "import signal, runpy, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "sys.argv = ['http.server', *sys.argv[1:]]; "
        "runpy.run_module('http.server', run_name='__main__')",
        "--bind",
        "127.0.0.1",
    ]
    assert service.start(settings)
    assert service.stop(settings)
    assert "ignored SIGTERM for 1s; sending SIGKILL" in capsys.readouterr().out
    assert not service.is_running(settings)


def test_a_port_held_by_something_else_names_the_setting(
    service: FakeService, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "ready", lambda settings, timeout=3.0: False)  # not a fake server
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", settings.registry_port))
        holder.listen()
        with pytest.raises(
            LocalServiceError,
            match="port .* is taken by something that is not a fake server; set INVENTORY_REGISTRY_PORT",
        ):
            service.start(settings)
    assert not service.children
