"""The pipeline on a secured cluster: a broker of this module's own with a SASL_SSL listener
(a CA and a broker certificate made here with ``openssl``, a SCRAM-SHA-512 user created with
the admin API on the plaintext listener), and every client through that listener: the topics
created, the seed day published, a worker consuming and answering, the day ended and compared
with the sequential model (tests/integration/day_end.py), the outputs read back.

Then what a platform engineer sees when the settings are wrong: a wrong password or a CA that
did not sign the broker's certificate stops the worker and the CLIs at once, with one line
and exit 77, not a flood of retries.

Skipped when ``openssl`` is missing, unless CI=true (then it fails: CI must run it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.settings import REPO_ROOT, Settings
from connectors.traffic import replay
from schemas.events import parse_event
from streams.kafka_config import EXIT_REFUSED
from tests.integration.conftest import PrivateBroker, _deployment, free_port
from tests.integration.day_end import end_the_day_and_compare

pytestmark = pytest.mark.kafka

SEED_DAY = REPO_ROOT / "connectors" / "samples" / "seed-day.jsonl"
USER, PASSWORD = "inventory-center", "s3cret-Scram-512"


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"openssl {' '.join(args)}:\n{done.stderr}"


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(key), "-out", str(cert),
        cwd=folder,
    )  # fmt: skip
    return cert, key


def make_server_cert(folder: Path, ca: tuple[Path, Path], name: str, usage: str = "serverAuth") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost signed by ``ca`` (``usage``: serverAuth, or
    clientAuth for a client of mutual TLS): (certificate, key)."""
    cert, key, csr, ext = (folder / f"{name}{suffix}" for suffix in (".pem", ".key", ".csr", ".ext"))
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        f"keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
        "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n"
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        cwd=folder,
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
        "-days", "2", "-extfile", str(ext), "-out", str(cert),
        cwd=folder,
    )  # fmt: skip
    return cert, key


@dataclass
class Secured:
    broker: PrivateBroker
    bootstrap: str  # the SASL_SSL listener
    env: dict[str, str]  # INVENTORY_* client settings for that listener
    ca: Path
    other_ca: Path
    service: Any  # streams.local_kafka.LocalKafka with the SASL_SSL listener
    mtls_bootstrap: str  # the SSL listener that requires a client certificate
    client_cert: Path
    client_key: Path

    def set_password(self, user: str, password: str) -> None:
        """Create or change a SCRAM-SHA-512 user, on the plaintext listener."""
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient({"bootstrap.servers": self.broker.bootstrap, "log_level": 0})
        upsert = UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()
        )
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(timeout=30)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    if shutil.which("openssl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("openssl is missing: CI must run the secured-cluster test (apt-get install openssl)")
        pytest.skip("openssl is missing")
    from streams import local_kafka

    root = tmp_path_factory.mktemp("secured-kafka")
    certs = root / "certs"
    certs.mkdir()
    ca = make_ca(certs, "test-ca")
    other_ca, _ = make_ca(certs, "other-ca")
    cert, key = make_server_cert(certs, ca, "broker")
    client_cert, client_key = make_server_cert(certs, ca, "client", usage="clientAuth")
    keystore = certs / "broker-keystore.pem"  # the key, then the chain
    keystore.write_text(key.read_text() + cert.read_text() + ca[0].read_text())

    broker = PrivateBroker(root)
    port, mtls_port = free_port(), free_port()
    listener = local_kafka.SecureListener(port=port, keystore_pem=keystore, mtls_port=mtls_port, client_ca=ca[0])
    service = local_kafka.LocalKafka(secure=listener)
    assert service.start(broker.settings), "a broker already answered on the private port"
    try:
        bootstrap = f"127.0.0.1:{port}"
        env = {
            "INVENTORY_BOOTSTRAP_SERVERS": bootstrap,
            "INVENTORY_SECURITY_PROTOCOL": "SASL_SSL",
            "INVENTORY_SASL_MECHANISM": "SCRAM-SHA-512",
            "INVENTORY_SASL_USERNAME": USER,
            "INVENTORY_SASL_PASSWORD": PASSWORD,
            "INVENTORY_SSL_CA_FILE": str(ca[0]),
        }
        secured = Secured(
            broker, bootstrap, env, ca[0], other_ca, service, f"127.0.0.1:{mtls_port}", client_cert, client_key
        )
        secured.set_password(USER, PASSWORD)
        yield secured
    finally:
        service.stop(broker.settings)


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(**{name.removeprefix("INVENTORY_").lower(): value for name, value in env.items()})  # type: ignore[arg-type]


def test_the_seed_day_runs_end_to_end_through_sasl_ssl(
    secured: Secured, tmp_path_factory: pytest.TempPathFactory
) -> None:
    events = [parse_event(json.loads(line)) for line in SEED_DAY.read_text().splitlines() if line.strip()]
    model = replay(events)
    skus = sorted(model.tables.stock_by_sku)
    for d in _deployment(secured.bootstrap, tmp_path_factory, extra_env=secured.env):
        assert d.settings.security_protocol == "SASL_SSL" and not d.settings.uses_local_broker
        worker = d.start_worker("secured")
        d.publish(list(events))
        end_the_day_and_compare(d, worker, events, model, skus, outputs=True)
        assert d.read(d.topics.inventory_changes), "no output read back through SASL_SSL"
        log = worker.log_tail(100_000)
        assert "authentication refused" not in log and "TLS handshake failed" not in log, log[-5000:]
        assert PASSWORD not in log
        worker.stop()


def run_refused(argv: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    """Run ``python <argv>`` with ``env``; (exit code, stderr, seconds)."""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=REPO_ROOT,
        env={**os.environ, **env, "INVENTORY_DATA_DIR": str(Path(env.get("HOME_TMP", "/tmp")) / "refused")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stderr, time.monotonic() - began


@pytest.mark.parametrize(
    ("case", "expected"),
    [("wrong password", "authentication refused"), ("unknown CA", "TLS handshake failed")],
)
def test_refused_credentials_stop_the_worker_and_the_cli_with_one_line(
    secured: Secured, tmp_path: Path, case: str, expected: str
) -> None:
    env = {**secured.env, "HOME_TMP": str(tmp_path), "INVENTORY_APP_ID": f"refused-{tmp_path.name}"}
    if case == "wrong password":
        env["INVENTORY_SASL_PASSWORD"] = "not-the-password"
    else:
        env["INVENTORY_SSL_CA_FILE"] = str(secured.other_ca)
    settings_of({k: v for k, v in env.items() if k.startswith("INVENTORY_")})  # the settings themselves are valid
    (tmp_path / "input").mkdir()
    day = tmp_path / "input" / "day.jsonl"
    day.write_text(SEED_DAY.read_text())
    for argv in (
        ["-m", "streams.worker"],
        ["-m", "connectors.tail", "orders", "--timeout", "5"],
        ["-m", "connectors.produce", str(day)],
    ):
        code, stderr, seconds = run_refused(argv, env)
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert code == EXIT_REFUSED, (argv, code, stderr)
        assert len(lines) == 1, (argv, stderr)  # one line, no retry flood
        assert expected in lines[0] and secured.bootstrap in lines[0], lines[0]
        assert PASSWORD not in stderr and "not-the-password" not in stderr
        assert seconds < 30, (argv, seconds)
    assert [p.name for p in day.parent.iterdir()] == ["day.jsonl"]  # produce sent nothing, wrote no unsent file


def test_the_connect_workers_client_properties_authenticate(secured: Secured, tmp_path: Path) -> None:
    """The Java client settings local_connect writes for the Connect worker (from the same
    settings, secrets through its directory config provider) list topics through SASL_SSL with
    Kafka's own TopicCommand; with a wrong password they are refused."""
    from connectors import local_connect
    from streams import local_kafka

    libs = local_kafka.KafkaPaths.of(secured.broker.settings).libs
    for password, expected in ((PASSWORD, 0), ("not-the-password", 1)):
        env = {**secured.env, "INVENTORY_SASL_PASSWORD": password, "INVENTORY_LOCAL_DIR": str(tmp_path)}
        settings = settings_of(env)
        lines, secrets = local_connect.client_security(settings)
        folder = tmp_path / f"secrets-{expected}"
        folder.mkdir()
        for key, value in secrets.items():
            (folder / key).write_text(value)  # as write_secrets does: the bare value
        own = [line for line in lines if not line.startswith(("producer.", "consumer.", "admin."))]
        assert len(lines) == 4 * len(own)  # the worker's clients and its tasks' alike
        config = tmp_path / "client.properties"
        config.write_text(
            "config.providers=directory\n"
            "config.providers.directory.class=org.apache.kafka.common.config.provider.DirectoryConfigProvider\n"
            + "\n".join(own).replace(local_connect.SECRETS_REFERENCE_PATH, str(folder))
            + "\n"
        )
        assert password not in config.read_text()
        done = subprocess.run(
            [
                "java", "-cp", f"{libs}/*", "org.apache.kafka.tools.TopicCommand",
                "--bootstrap-server", secured.bootstrap, "--command-config", str(config), "--list",
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == expected, (done.stdout + done.stderr)[-2000:]
        if expected:
            assert "SaslAuthenticationException" in done.stdout + done.stderr


def test_mutual_tls_for_librdkafka_aiokafka_and_the_java_client(secured: Secured, tmp_path: Path) -> None:
    """The SSL listener requires a client certificate: the settings' CA, certificate and key
    let librdkafka (start-up check), aiokafka (the worker's SSL context) and the Java client
    (Connect's PEM keystore) in; without the certificate the check says so in one line."""
    import asyncio

    from aiokafka import AIOKafkaConsumer

    from streams import local_kafka
    from streams.kafka_config import (
        check_connection,
        faust_broker_credentials,
        java_client_properties,
        java_keystore_pem,
    )

    mtls = {
        "INVENTORY_BOOTSTRAP_SERVERS": secured.mtls_bootstrap,
        "INVENTORY_SECURITY_PROTOCOL": "SSL",
        "INVENTORY_SSL_CA_FILE": str(secured.ca),
        "INVENTORY_SSL_CERT_FILE": str(secured.client_cert),
        "INVENTORY_SSL_KEY_FILE": str(secured.client_key),
    }
    settings = settings_of(mtls)
    assert check_connection(settings, timeout_s=20) is None
    without = settings_of({k: v for k, v in mtls.items() if "CERT" not in k and "KEY" not in k})
    refused = check_connection(without, timeout_s=20)
    assert refused is not None and refused[0] == "tls" and "\n" not in refused[1], refused

    async def topics_through_aiokafka() -> set[str]:
        from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

        auth = credentials_to_aiokafka_auth(faust_broker_credentials(settings))  # what Faust hands aiokafka
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, **auth)
        await consumer.start()
        try:
            return set(await consumer.topics())
        finally:
            await consumer.stop()

    assert isinstance(asyncio.run(topics_through_aiokafka()), set)

    keystore = tmp_path / "keystore.pem"
    keystore.write_text(java_keystore_pem(settings) or "")
    config = tmp_path / "client.properties"
    properties = java_client_properties(settings, keystore_pem=keystore)  # what Connect's clients get
    config.write_text("".join(f"{name}={value}\n" for name, value in properties.items()))
    libs = local_kafka.KafkaPaths.of(secured.broker.settings).libs
    done = subprocess.run(
        [
            "java", "-cp", f"{libs}/*", "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server", secured.mtls_bootstrap, "--command-config", str(config), "--list",
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]


def test_a_worker_whose_credentials_are_revoked_while_it_runs_stops_with_one_line(
    secured: Secured, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """aiokafka logs a refused authentication and retries for ever; the worker's watch on
    its log (streams/client_errors.py RefusalWatch) stops it with one line and exit 77. The
    password is changed while the worker runs, then the broker restarted: every client must
    log in again. Runs last: it restarts the module's broker."""
    user = "rotated-user"
    secured.set_password(user, "first-password")
    env = {**secured.env, "INVENTORY_SASL_USERNAME": user, "INVENTORY_SASL_PASSWORD": "first-password"}
    for d in _deployment(secured.bootstrap, tmp_path_factory, extra_env=env):
        worker = d.start_worker("rotated")
        secured.set_password(user, "second-password")
        secured.service.stop(secured.broker.settings)
        secured.service.start(secured.broker.settings)
        began = time.monotonic()
        while worker.alive() and time.monotonic() - began < 90:
            time.sleep(0.5)
        assert worker.proc is not None and worker.proc.returncode == EXIT_REFUSED, worker.log_tail(60)
        refused = [line for line in worker.log_tail(400).splitlines() if "authentication refused at" in line]
        assert len(refused) == 1, refused
        flood = [line for line in worker.log_tail(2000).splitlines() if "Unable connect to" in line]
        assert len(flood) <= 4, flood  # aiokafka's reconnect failures summarised (ConnectionFlood)
        assert "first-password" not in worker.log_tail(2000) and "second-password" not in worker.log_tail(2000)
        secured.set_password(user, "first-password")  # the deployment's topics are deleted with it
