"""Client security from the one settings object: validation, what each client library is
given (librdkafka, Faust/aiokafka, the Java client of Kafka Connect, the schema registry
client), the pass-through options, the connection-error summary, and no secret in a log line
or an error message. The real SASL_SSL broker: tests/integration/test_secured_cluster.py."""

from __future__ import annotations

import logging
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config.settings import Settings
from streams import kafka_config
from streams.client_errors import ConnectionFlood, ErrorSummary, RefusalWatch, classify
from streams.kafka_config import (
    BadClientOption,
    OidcToken,
    admin_config,
    consumer_config,
    faust_broker_credentials,
    faust_client_settings,
    java_client_properties,
    producer_config,
    redacted_url,
    registry_config,
    split_url_credentials,
)

SCRAM = {
    "bootstrap_servers": "broker.example.com:9096",
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "inventory",
    "sasl_password": "hunter2-secret",
}
OIDC = {
    "bootstrap_servers": "broker.example.com:9096",
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "OAUTHBEARER",
    "sasl_oauthbearer_token_endpoint_url": "https://idp.example.com/oauth2/token",
    "sasl_oauthbearer_client_id": "inventory-center",
    "sasl_oauthbearer_client_secret": "oidc-secret",
    "sasl_oauthbearer_scope": "kafka",
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, and a client certificate and key it signed (openssl)."""
    folder = tmp_path_factory.mktemp("pki")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ca", "-keyout", "ca.key",
            "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=client", "-keyout", "client.key", "-out", "c.csr")
    openssl("x509", "-req", "-in", "c.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-out", "client.pem")  # fmt: skip
    return {"ca": folder / "ca.pem", "cert": folder / "client.pem", "key": folder / "client.key"}


def settings(**fields: Any) -> Settings:
    return Settings(**fields)


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
        ({"sasl_mechanism": "PLAIN"}, "uses no SASL"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256"}, "needs sasl_username"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}, "sasl_oauthbearer_token_endpoint_url"),
        ({"security_protocol": "SSL", "ssl_cert_file": "/etc/hostname"}, "both ssl_cert_file and ssl_key_file"),
        ({"security_protocol": "SSL", "ssl_ca_file": "/nonexistent/ca.pem"}, "is not a readable file"),
        ({"ssl_ca_file": "/etc/hostname"}, "uses no TLS"),
        ({"security_protocol": "SSL", "ssl_key_password": "x"}, "without ssl_key_file"),
        ({"schema_registry_username": "u"}, "schema registry basic auth needs both"),
    ],
)
def test_inconsistent_security_settings_are_refused_with_a_clear_message(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**fields)


def test_sasl_mechanism_is_one_of_the_supported_four() -> None:
    with pytest.raises(ValidationError):
        settings(security_protocol="SASL_SSL", sasl_mechanism="GSSAPI", sasl_username="u", sasl_password="p")


def test_a_refused_settings_object_does_not_print_its_secrets() -> None:
    with pytest.raises(ValidationError) as refused:
        settings(**{**SCRAM, "sasl_username": None})
    assert "hunter2-secret" not in str(refused.value)
    assert "hunter2-secret" not in repr(settings(**SCRAM))


def test_a_secured_cluster_is_not_the_local_broker() -> None:
    assert Settings().uses_local_broker
    local_port_secured = {**SCRAM, "bootstrap_servers": "127.0.0.1:9092"}
    assert not settings(**local_port_secured).uses_local_broker


# --- librdkafka -----------------------------------------------------------------------------


def test_plaintext_clients_get_no_security_properties() -> None:
    cfg = producer_config(Settings())
    assert cfg["security.protocol"] == "PLAINTEXT"
    assert not [k for k in cfg if k.startswith(("ssl.", "sasl."))]
    assert cfg["partitioner"] == "murmur2_random"


def test_every_librdkafka_client_gets_tls_and_scram(pki: dict[str, Path]) -> None:
    s = settings(**SCRAM, ssl_ca_file=pki["ca"])
    for cfg in (admin_config(s), producer_config(s), consumer_config(s, "g")):
        assert cfg["security.protocol"] == "SASL_SSL"
        assert cfg["sasl.mechanism"] == "SCRAM-SHA-512"
        assert (cfg["sasl.username"], cfg["sasl.password"]) == ("inventory", "hunter2-secret")
        assert cfg["ssl.ca.location"] == str(pki["ca"])
        assert cfg["ssl.endpoint.identification.algorithm"] == "https"
        assert callable(cfg["error_cb"]) and hasattr(cfg["logger"], "log")


def test_mutual_tls_and_hostname_check_off(pki: dict[str, Path]) -> None:
    s = settings(
        security_protocol="SSL",
        ssl_ca_file=pki["ca"],
        ssl_cert_file=pki["cert"],
        ssl_key_file=pki["key"],
        ssl_key_password="kp",
        ssl_check_hostname=False,
    )
    cfg = admin_config(s)
    assert cfg["ssl.certificate.location"] == str(pki["cert"]) and cfg["ssl.key.location"] == str(pki["key"])
    assert cfg["ssl.key.password"] == "kp"
    assert cfg["ssl.endpoint.identification.algorithm"] == "none"
    assert "sasl.mechanism" not in cfg


def test_oauthbearer_uses_librdkafkas_oidc_client_credentials() -> None:
    cfg = consumer_config(settings(**OIDC), "g")
    assert cfg["sasl.mechanism"] == "OAUTHBEARER" and cfg["sasl.oauthbearer.method"] == "oidc"
    assert cfg["sasl.oauthbearer.token.endpoint.url"] == "https://idp.example.com/oauth2/token"
    assert (cfg["sasl.oauthbearer.client.id"], cfg["sasl.oauthbearer.client.secret"]) == (
        "inventory-center",
        "oidc-secret",
    )
    assert cfg["sasl.oauthbearer.scope"] == "kafka"


def test_kafka_client_options_reach_every_client_and_win() -> None:
    s = settings(kafka_client_options={"client.rack": "use1-az1", "linger.ms": "50"})
    for cfg in (admin_config(s), producer_config(s, **{"linger.ms": 0}), consumer_config(s, "g")):
        assert cfg["client.rack"] == "use1-az1"
    assert producer_config(s, **{"linger.ms": 0})["linger.ms"] == "50"


def test_librdkafka_accepts_the_derived_configs(pki: dict[str, Path]) -> None:
    """librdkafka checks property names and values when a client is created (no connection:
    nothing listens on port 1)."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient

    for fields in (
        {**SCRAM, "bootstrap_servers": "127.0.0.1:1", "ssl_ca_file": pki["ca"]},
        {
            "bootstrap_servers": "127.0.0.1:1",
            "security_protocol": "SSL",
            "ssl_ca_file": pki["ca"],
            "ssl_cert_file": pki["cert"],
            "ssl_key_file": pki["key"],
        },
        {**OIDC, "bootstrap_servers": "127.0.0.1:1"},
    ):
        s = settings(**fields)
        AdminClient(admin_config(s))
        Producer(producer_config(s))
        Consumer(consumer_config(s, "g")).close()


# --- Faust / aiokafka -----------------------------------------------------------------------


def test_faust_gets_an_ssl_context_from_the_ca_and_client_certificate(pki: dict[str, Path]) -> None:
    import faust

    s = settings(**SCRAM, ssl_ca_file=pki["ca"], ssl_cert_file=pki["cert"], ssl_key_file=pki["key"])
    credentials = faust_broker_credentials(s)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.protocol.value == "SASL_SSL"
    assert (credentials.username, credentials.password) == ("inventory", "hunter2-secret")
    context = credentials.ssl_context
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert any(c["subject"] == ((("commonName", "ca"),),) for c in context.get_ca_certs())


def test_faust_ssl_only_and_plaintext() -> None:
    import faust

    assert faust_broker_credentials(Settings()) is None
    credentials = faust_broker_credentials(settings(security_protocol="SSL", ssl_check_hostname=False))
    assert isinstance(credentials, faust.SSLCredentials)
    assert not credentials.context.check_hostname


def test_faust_oauthbearer_fetches_its_token_from_the_oidc_endpoint() -> None:
    import asyncio

    import faust
    from aiokafka.abc import AbstractTokenProvider

    credentials = faust_broker_credentials(settings(**OIDC))
    assert isinstance(credentials, faust.OAuthCredentials) and credentials.protocol.value == "SASL_SSL"
    provider = credentials.oauth_cb
    assert isinstance(provider, AbstractTokenProvider)
    answers = iter([{"access_token": "t1", "expires_in": 3600}])
    provider._oidc._fetch = lambda: next(answers)
    assert asyncio.run(provider.token()) == "t1"
    assert asyncio.run(provider.token()) == "t1"  # cached: one request


def test_the_oidc_token_is_renewed_before_it_expires() -> None:
    answers = iter([{"access_token": "t1", "expires_in": 10}, {"access_token": "t2", "expires_in": 10}])
    token = OidcToken(settings(**OIDC), fetch=lambda: next(answers))
    assert token.get() == "t1"
    assert token.get() == "t2"  # 10 s tokens are renewed 30 s early: at once
    with pytest.raises(RuntimeError, match="without an access_token"):
        OidcToken(settings(**OIDC), fetch=lambda: {"error": "invalid_client"}).get()


def test_the_oidc_request_is_a_client_credentials_grant() -> None:
    token = OidcToken(settings(**OIDC))
    form = dict(pair.split("=") for pair in token._form.decode().split("&"))
    assert form == {
        "grant_type": "client_credentials",
        "client_id": "inventory-center",
        "client_secret": "oidc-secret",
        "scope": "kafka",
    }


def test_aiokafka_client_options_are_faust_client_settings_checked() -> None:
    s = settings(aiokafka_client_options={"producer_compression_type": "lz4", "broker_request_timeout": 120})
    assert faust_client_settings(s) == {"producer_compression_type": "lz4", "broker_request_timeout": 120}
    for bad in ({"compression_type": "lz4"}, {"producer_no_such_thing": 1}, {"broker_credentials": None}):
        with pytest.raises(BadClientOption, match=next(iter(bad))):
            faust_client_settings(settings(aiokafka_client_options=bad))


def test_the_worker_app_takes_the_pass_through(tmp_path: Path) -> None:
    """create_app hands the pass-through to faust.App, over the worker's own defaults."""
    import faust

    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def capture(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise Stop

    from streams import app as app_module

    original = app_module.faust.App
    app_module.faust.App = capture  # type: ignore[misc]
    try:
        with pytest.raises(Stop):
            app_module.create_app(settings(data_dir=tmp_path, aiokafka_client_options={"producer_linger_ms": 25}))
    finally:
        app_module.faust.App = original  # type: ignore[misc]
    assert seen["producer_linger_ms"] == 25 and seen["producer_acks"] == -1
    assert faust.App is original


# --- Kafka Connect (Java client) ------------------------------------------------------------


def test_java_properties_for_scram_keep_the_password_in_the_jaas_line_only(pki: dict[str, Path]) -> None:
    props = java_client_properties(settings(**SCRAM, ssl_ca_file=pki["ca"]))
    assert props["security.protocol"] == "SASL_SSL" and props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert props["ssl.truststore.type"] == "PEM" and props["ssl.truststore.location"] == str(pki["ca"])
    assert props["sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="inventory" '
        'password="hunter2-secret";'
    )
    assert [k for k, v in props.items() if "hunter2-secret" in v] == ["sasl.jaas.config"]


def test_java_properties_for_plain_oauthbearer_and_mtls(pki: dict[str, Path], tmp_path: Path) -> None:
    plain = java_client_properties(settings(**{**SCRAM, "sasl_mechanism": "PLAIN", "sasl_password": 'a"b\\c'}))
    assert plain["sasl.jaas.config"].startswith("org.apache.kafka.common.security.plain.PlainLoginModule required")
    assert 'password="a\\"b\\\\c";' in plain["sasl.jaas.config"]
    oidc = java_client_properties(settings(**OIDC))
    assert oidc["sasl.login.callback.handler.class"].endswith("OAuthBearerLoginCallbackHandler")
    assert oidc["sasl.oauthbearer.token.endpoint.url"] == OIDC["sasl_oauthbearer_token_endpoint_url"]
    assert 'clientId="inventory-center" clientSecret="oidc-secret" scope="kafka";' in oidc["sasl.jaas.config"]
    mtls = settings(security_protocol="SSL", ssl_cert_file=pki["cert"], ssl_key_file=pki["key"])
    with pytest.raises(ValueError, match="keystore"):
        java_client_properties(mtls)
    props = java_client_properties(mtls, keystore_pem=tmp_path / "ks.pem")
    assert (props["ssl.keystore.type"], props["ssl.keystore.location"]) == ("PEM", str(tmp_path / "ks.pem"))
    pem = kafka_config.java_keystore_pem(mtls)
    assert pem is not None and pem.index("PRIVATE KEY") < pem.index("BEGIN CERTIFICATE")


def test_the_connect_worker_properties_reference_the_secrets(pki: dict[str, Path], tmp_path: Path) -> None:
    from connectors import local_connect

    assert local_connect.client_security(Settings()) == ([], {})
    s = settings(**SCRAM, ssl_ca_file=pki["ca"], local_dir=tmp_path)
    text = local_connect.worker_properties(s)
    assert "hunter2-secret" not in text
    for prefix in local_connect.CLIENT_PREFIXES:
        assert f"{prefix}security.protocol=SASL_SSL\n" in text
        reference = f"${{directory:{local_connect.SECRETS_REFERENCE_PATH}:kafka.sasl.jaas.config}}"
        assert f"{prefix}sasl.jaas.config={reference}" in text
    _, secrets = local_connect.client_security(s)
    assert "hunter2-secret" in secrets["kafka.sasl.jaas.config"]


# --- the schema registry --------------------------------------------------------------------


def test_registry_credentials_are_taken_out_of_the_url() -> None:
    assert split_url_credentials("https://u%40corp:p%3Aw@reg.example.com:8443/ccompat") == (
        "https://reg.example.com:8443/ccompat",
        "u@corp:p:w",
    )
    cfg = registry_config(settings(schema_registry_url="https://user:pw-secret@reg.example.com/apis/ccompat/v7"))
    assert cfg == {
        "url": "https://reg.example.com/apis/ccompat/v7",
        "basic.auth.user.info": "user:pw-secret",
    }


def test_registry_basic_auth_and_tls_from_settings(pki: dict[str, Path]) -> None:
    cfg = registry_config(
        settings(
            schema_registry_url="https://reg.example.com",
            schema_registry_username="api-key",
            schema_registry_password="api-secret",
            schema_registry_ca_file=pki["ca"],
            schema_registry_cert_file=pki["cert"],
            schema_registry_key_file=pki["key"],
        )
    )
    assert cfg is not None and cfg["basic.auth.user.info"] == "api-key:api-secret"
    assert (cfg["ssl.ca.location"], cfg["ssl.certificate.location"], cfg["ssl.key.location"]) == tuple(
        str(pki[k]) for k in ("ca", "cert", "key")
    )
    assert registry_config(Settings()) is None


def test_the_registry_url_is_logged_redacted_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    """Every place that shows the registry URL: the Wire (the worker's log line and its
    RegistryUnavailable errors), local_registry's "another registry" line."""
    from connectors import local_registry
    from streams.wire import RegistryUnavailable, Wire

    url = "http://user:pw-secret@127.0.0.1:1/apis/ccompat/v7"
    assert redacted_url(url) == "http://***@127.0.0.1:1/apis/ccompat/v7"
    s = settings(schema_registry_url=url)
    wire = Wire(s)
    assert wire.registry_url == "http://***@127.0.0.1:1/apis/ccompat/v7"
    from streams.topics import Topics

    with pytest.raises(RegistryUnavailable) as unavailable:
        wire.register_all(Topics(s))
    assert "pw-secret" not in str(unavailable.value) and "***@127.0.0.1:1" in str(unavailable.value)
    elsewhere = local_registry.REGISTRY.elsewhere(s)
    assert elsewhere is not None and "pw-secret" not in elsewhere and "***@" in elsewhere
    assert "pw-secret" not in local_registry.apicurio_native_url(s)
    assert not local_registry.uses_local_registry(s)


# --- connection errors ----------------------------------------------------------------------


class FakeError:
    def __init__(self, code: int, text: str, fatal: bool = False) -> None:
        self._code, self._text, self._fatal = code, text, fatal

    def code(self) -> int:
        return self._code

    def str(self) -> str:
        return self._text

    def fatal(self) -> bool:
        return self._fatal


REFUSED = FakeError(-195, "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused")


def test_errors_are_classified() -> None:
    assert classify(FakeError(-169, "SASL authentication error: Authentication failed")) == "authentication"
    assert classify(FakeError(-181, "SSL handshake failed: certificate verify failed")) == "tls"
    assert classify(REFUSED) == "unreachable"
    assert classify(FakeError(-187, "1/1 brokers are down")) == "unreachable"
    assert classify("sasl_ssl://h:1/bootstrap: SSL handshake failed: error:0A000086") == "tls"
    assert classify(FakeError(-170, "Local: Invalid argument or configuration")) == "other"


def test_repeated_connection_errors_are_summarised() -> None:
    now = [0.0]
    lines: list[tuple[int, str]] = []
    summary = ErrorSummary("kafka producer", "127.0.0.1:9", 30.0, clock=lambda: now[0], emit=lambda *a: lines.append(a))
    for _ in range(30):  # librdkafka retries about every second
        summary.on_error(REFUSED)
        now[0] += 1.0
    assert len(lines) == 1 and lines[0][0] == logging.WARNING
    assert lines[0][1].startswith("kafka producer: connection failed at 127.0.0.1:9: ")
    summary.on_error(REFUSED)
    assert len(lines) == 2
    assert lines[1][1].startswith("kafka producer: connection failed at 127.0.0.1:9, 30 retries in 30 s: ")
    summary.on_error(FakeError(-169, "SASL authentication error: Authentication failed"))  # another kind: told at once
    assert len(lines) == 3 and lines[2][0] == logging.ERROR and "authentication refused" in lines[2][1]
    summary.on_error(FakeError(-170, "something else", fatal=True))  # not a connection error: passed on
    assert lines[3] == (logging.ERROR, "kafka producer: something else")


def test_librdkafka_log_lines_of_failed_connections_are_summarised_too() -> None:
    lines: list[tuple[int, str]] = []
    summary = ErrorSummary("kafka admin", "h:1", emit=lambda *a: lines.append(a))
    for _ in range(20):
        summary.logger.log(
            logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", "Connect to h:1 failed: Connection refused"
        )
    assert len(lines) == 1


def test_the_one_line_verdict_prefers_the_telling_failure() -> None:
    line = ErrorSummary.one_line("h:1", [REFUSED, FakeError(-169, "Authentication failed: bad password")], 15)
    assert line == "authentication refused at h:1: Authentication failed: bad password"
    assert ErrorSummary.one_line("h:1", [REFUSED] * 12, 15).startswith(
        "broker unreachable at h:1, 12 failed attempts in 15 s: "
    )


def test_refusal_of_an_unreachable_broker_is_69_with_a_hint() -> None:
    code, line = kafka_config.refusal(settings(bootstrap_servers="127.0.0.1:1"), timeout_s=1.0) or (0, "")
    assert code == kafka_config.EXIT_NO_BROKER
    assert line.startswith("broker unreachable at 127.0.0.1:1") and "\n" not in line


def test_the_aiokafka_watch_stops_at_the_first_refusal() -> None:
    refused: list[str] = []
    watch = RefusalWatch("h:1", refused.append)
    log = logging.getLogger("aiokafka.test-watch")
    log.addHandler(watch)
    log.propagate = False
    try:
        log.error('Unable connect to "h:1": [Errno 111] Connection refused')
        assert refused == []
        log.error('Unable connect to "h:1": [Error 58] SaslAuthenticationFailed: Authentication failed')
        log.error('Unable connect to "h:1": [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed')
    finally:
        log.removeHandler(watch)
    assert len(refused) == 1 and refused[0].startswith("authentication refused at h:1 (worker's aiokafka client)")


def test_aiokafkas_reconnect_flood_is_summarised_but_refusals_pass() -> None:
    now = [0.0]
    flood = ConnectionFlood(window_s=30.0, clock=lambda: now[0])
    passed: list[str] = []

    def log(message: str) -> None:
        record = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, message, (), None)
        if flood.filter(record):
            passed.append(record.getMessage())

    for _ in range(250):  # ten seconds of aiokafka during an outage
        log("Unable connect to node with id 1: [Errno 111] Connect call failed ('127.0.0.1', 9092)")
        log("Unable to update metadata from [1]")
        now[0] += 0.04
    assert len(passed) == 1
    log("Unable connect to node with id 1: [Error 58] SaslAuthenticationFailed: Authentication failed")
    log("Committing offsets: done")
    assert len(passed) == 3
    now[0] = 31.0
    log("Unable to update metadata from [1]")
    assert passed[-1] == "Unable to update metadata from [1] (499 more connection errors in 31 s)"


def test_raw_aiokafka_clients_get_the_same_security(pki: dict[str, Path]) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer

    kwargs = kafka_config.aiokafka_security(settings(**SCRAM, ssl_ca_file=pki["ca"]))
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("inventory", "hunter2-secret")
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    oidc = kafka_config.aiokafka_security(settings(**OIDC))
    assert oidc["sasl_mechanism"] == "OAUTHBEARER" and oidc["sasl_oauth_token_provider"] is not None
    assert kafka_config.aiokafka_security(Settings()) == {"security_protocol": "PLAINTEXT"}

    async def construct() -> None:
        for k in (kwargs, oidc):
            AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **k)  # aiokafka checks the combination

    asyncio.run(construct())
