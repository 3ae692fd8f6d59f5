"""The one home of every Kafka client's connection and security settings (docs/security.md).

librdkafka: ``admin_config``, ``producer_config``, ``consumer_config`` (TLS files, SASL
PLAIN/SCRAM/OAUTHBEARER-OIDC, a connection-error summary, then ``kafka_client_options``, which
win). Faust/aiokafka: ``faust_broker_credentials`` (an ``ssl.SSLContext``; SASL, OAUTHBEARER
through ``OidcTokenProvider``), ``faust_client_settings`` (``aiokafka_client_options``,
checked), ``aiokafka_security``. Connect: ``java_client_properties``. ``check_connection``:
one metadata request, a one-line reason when refused or unanswered. Our librdkafka producers
partition with ``murmur2_random``, as Faust and Java do (librdkafka's default is CRC32): a key
lands on the same partition whichever client wrote it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from config.settings import Settings
from streams.client_errors import ErrorSummary, classify

# The OIDC token is renewed this long before it expires.
TOKEN_RENEW_BEFORE_S = 30.0


def _security(settings: Settings) -> dict[str, Any]:
    """librdkafka's security properties for these settings."""
    s = settings
    cfg: dict[str, Any] = {"security.protocol": s.security_protocol}
    if s.security_protocol.endswith("SSL"):
        cfg["ssl.endpoint.identification.algorithm"] = "https" if s.ssl_check_hostname else "none"
        if s.ssl_ca_file is not None:
            cfg["ssl.ca.location"] = str(s.ssl_ca_file)
        if s.ssl_cert_file is not None and s.ssl_key_file is not None:
            cfg["ssl.certificate.location"] = str(s.ssl_cert_file)
            cfg["ssl.key.location"] = str(s.ssl_key_file)
        if s.ssl_key_password is not None:
            cfg["ssl.key.password"] = s.ssl_key_password.get_secret_value()
    if s.sasl_mechanism is not None:
        cfg["sasl.mechanism"] = s.sasl_mechanism
        if s.sasl_mechanism == "OAUTHBEARER":
            cfg["sasl.oauthbearer.method"] = "oidc"
            cfg["sasl.oauthbearer.token.endpoint.url"] = s.sasl_oauthbearer_token_endpoint_url
            cfg["sasl.oauthbearer.client.id"] = s.sasl_oauthbearer_client_id
            secret = s.sasl_oauthbearer_client_secret
            cfg["sasl.oauthbearer.client.secret"] = secret.get_secret_value() if secret else ""
            if s.sasl_oauthbearer_scope:
                cfg["sasl.oauthbearer.scope"] = s.sasl_oauthbearer_scope
        else:
            cfg["sasl.username"] = s.sasl_username or ""
            cfg["sasl.password"] = s.sasl_password.get_secret_value() if s.sasl_password else ""
    return cfg


def _client(settings: Settings, kind: str, base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    summary = ErrorSummary(f"kafka {kind}", settings.bootstrap_servers)
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "error_cb": summary.on_error,
        "logger": summary.logger,
        **base,
        **_security(settings),
        **overrides,
        **settings.kafka_client_options,
    }


def admin_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return _client(settings, "admin", {}, overrides)


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    base = {"partitioner": "murmur2_random", "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    return _client(settings, "producer", base, overrides)


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    base = {"group.id": group_id, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    return _client(settings, "consumer", base, overrides)


# --- Faust (aiokafka) -----------------------------------------------------------------------


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context of the worker's aiokafka clients: the configured CA (or the system's
    trust store), the client certificate and key for mutual TLS, hostname checking as set."""
    context = ssl.create_default_context(cafile=str(settings.ssl_ca_file) if settings.ssl_ca_file else None)
    context.check_hostname = settings.ssl_check_hostname
    if settings.ssl_cert_file is not None and settings.ssl_key_file is not None:
        password = settings.ssl_key_password.get_secret_value() if settings.ssl_key_password else None
        context.load_cert_chain(str(settings.ssl_cert_file), str(settings.ssl_key_file), password=password)
    return context


class OidcToken:
    """An OAuth 2 access token from an OIDC token endpoint (client-credentials grant), cached
    until ``TOKEN_RENEW_BEFORE_S`` before it expires. Thread-safe; the request is blocking."""

    def __init__(self, settings: Settings, fetch: Any = None) -> None:
        assert settings.sasl_oauthbearer_token_endpoint_url and settings.sasl_oauthbearer_client_id
        self._url = settings.sasl_oauthbearer_token_endpoint_url
        secret = settings.sasl_oauthbearer_client_secret
        form = {
            "grant_type": "client_credentials",
            "client_id": settings.sasl_oauthbearer_client_id,
            "client_secret": secret.get_secret_value() if secret else "",
        }
        if settings.sasl_oauthbearer_scope:
            form["scope"] = settings.sasl_oauthbearer_scope
        self._form = urllib.parse.urlencode(form).encode()
        self._context = (
            ssl.create_default_context(cafile=str(settings.ssl_ca_file))
            if settings.ssl_ca_file and self._url.startswith("https:")
            else None
        )
        self._fetch = fetch or self._post
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    def _post(self) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - the configured endpoint
            self._url, data=self._form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        with urllib.request.urlopen(request, timeout=30, context=self._context) as answer:  # noqa: S310
            body: dict[str, Any] = json.loads(answer.read())
            return body

    def get(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._renew_at:
                body = self._fetch()
                if "access_token" not in body:
                    raise RuntimeError(f"the OIDC token endpoint {self._url} answered without an access_token")
                self._token = str(body["access_token"])
                lifetime = float(body.get("expires_in", 300))
                self._renew_at = time.monotonic() + max(0.0, lifetime - TOKEN_RENEW_BEFORE_S)
            return self._token


def oidc_token_provider(settings: Settings) -> Any:
    """aiokafka's ``AbstractTokenProvider`` over ``OidcToken`` (the request runs in a thread)."""
    from aiokafka.abc import AbstractTokenProvider

    class OidcTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
        def __init__(self, token: OidcToken) -> None:
            self._oidc = token

        async def token(self) -> str:
            return await asyncio.to_thread(self._oidc.get)

    return OidcTokenProvider(OidcToken(settings))


def faust_broker_credentials(settings: Settings) -> Any:
    """Faust's credentials object for these settings, or None for PLAINTEXT."""
    if settings.security_protocol == "PLAINTEXT":
        return None
    import faust

    context = ssl_context(settings) if settings.security_protocol.endswith("SSL") else None
    if settings.sasl_mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(oauth_cb=oidc_token_provider(settings), ssl_context=context)
    if settings.sasl_mechanism is not None:
        return faust.SASLCredentials(
            username=settings.sasl_username or "",
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else "",
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    assert context is not None  # SSL without SASL
    return faust.SSLCredentials(context)


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of a raw aiokafka client (benchmark probes; Faust builds its own
    from ``faust_broker_credentials``): the same protocol, TLS context and SASL settings."""
    s = settings
    kwargs: dict[str, Any] = {"security_protocol": s.security_protocol}
    if s.security_protocol.endswith("SSL"):
        kwargs["ssl_context"] = ssl_context(s)
    if s.sasl_mechanism == "OAUTHBEARER":
        kwargs.update(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=oidc_token_provider(s))
    elif s.sasl_mechanism is not None:
        password = s.sasl_password.get_secret_value() if s.sasl_password else ""
        kwargs.update(sasl_mechanism=s.sasl_mechanism, sasl_plain_username=s.sasl_username)
        kwargs["sasl_plain_password"] = password
    return kwargs


FAUST_CLIENT_PREFIXES = ("broker_", "consumer_", "producer_")


class BadClientOption(ValueError):
    """An ``aiokafka_client_options`` key that Faust does not know or that may not be passed."""


def faust_client_settings(settings: Settings) -> dict[str, Any]:
    """``aiokafka_client_options``, checked against Faust's own settings: only its
    ``broker_*``/``consumer_*``/``producer_*`` settings (the ones that reach the aiokafka
    clients), never ``broker_credentials`` (derived from the security settings). Faust ignores
    an unknown keyword silently; this refuses it."""
    import faust

    options = dict(settings.aiokafka_client_options)
    bad = sorted(
        key
        for key in options
        if not key.startswith(FAUST_CLIENT_PREFIXES)
        or key == "broker_credentials"
        or not isinstance(getattr(faust.Settings, key, None), property)
    )
    if bad:
        raise BadClientOption(
            f"aiokafka_client_options: {', '.join(bad)} not accepted: use Faust's broker_*, consumer_* and "
            "producer_* settings (docs/security.md); security comes from the security_* / sasl_* / ssl_* settings"
        )
    return options


# --- Kafka Connect (the Java client) -------------------------------------------------------


def _jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Java client properties that hold secrets: written to a 0600 file, referenced, never inlined.
JAVA_SECRET_PROPERTIES = ("sasl.jaas.config", "ssl.key.password")


def java_keystore_pem(settings: Settings) -> str | None:
    """Mutual TLS for the Java client: its PEM keystore is one file holding the private key
    and then the certificate chain (None without a client certificate)."""
    if settings.ssl_cert_file is None or settings.ssl_key_file is None:
        return None
    key, chain = settings.ssl_key_file.read_text(), settings.ssl_cert_file.read_text()
    return key.rstrip("\n") + "\n" + chain.rstrip("\n") + "\n"


def java_client_properties(settings: Settings, keystore_pem: Path | None = None) -> dict[str, str]:
    """The security settings in the Java client's property names (Kafka Connect).

    CA and client certificate are PEM stores (``ssl.truststore.type=PEM``,
    ``ssl.keystore.type=PEM`` at ``keystore_pem``, a file holding ``java_keystore_pem``:
    required with mutual TLS). OAUTHBEARER uses Kafka's built-in OIDC login handler; Kafka
    4 also needs the JVM to allow the endpoint (``-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls``).
    The values of ``JAVA_SECRET_PROPERTIES`` are secrets."""
    s = settings
    props: dict[str, str] = {"security.protocol": s.security_protocol}
    if s.security_protocol.endswith("SSL"):
        props["ssl.endpoint.identification.algorithm"] = "https" if s.ssl_check_hostname else ""
        if s.ssl_ca_file is not None:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = str(s.ssl_ca_file)
        if s.ssl_cert_file is not None and s.ssl_key_file is not None:
            # Java's PEM keystore takes one file holding the key and its certificate chain.
            if keystore_pem is None:
                raise ValueError("mutual TLS for the Java client needs the keystore file (java_keystore_pem)")
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.location"] = str(keystore_pem)
            if s.ssl_key_password is not None:
                props["ssl.key.password"] = s.ssl_key_password.get_secret_value()
    if s.sasl_mechanism is not None:
        props["sasl.mechanism"] = s.sasl_mechanism
        if s.sasl_mechanism == "OAUTHBEARER":
            secret = s.sasl_oauthbearer_client_secret.get_secret_value() if s.sasl_oauthbearer_client_secret else ""
            scope = f" scope={_jaas_quote(s.sasl_oauthbearer_scope)}" if s.sasl_oauthbearer_scope else ""
            props["sasl.login.callback.handler.class"] = (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
            )
            props["sasl.oauthbearer.token.endpoint.url"] = s.sasl_oauthbearer_token_endpoint_url or ""
            props["sasl.jaas.config"] = (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                f"clientId={_jaas_quote(s.sasl_oauthbearer_client_id or '')} clientSecret={_jaas_quote(secret)}{scope};"
            )
        else:
            module = (
                "org.apache.kafka.common.security.plain.PlainLoginModule"
                if s.sasl_mechanism == "PLAIN"
                else "org.apache.kafka.common.security.scram.ScramLoginModule"
            )
            password = s.sasl_password.get_secret_value() if s.sasl_password else ""
            props["sasl.jaas.config"] = (
                f"{module} required username={_jaas_quote(s.sasl_username or '')} password={_jaas_quote(password)};"
            )
    return props


# --- the start-up check --------------------------------------------------------------------


def check_connection(settings: Settings, timeout_s: float = 15.0) -> tuple[str, str] | None:
    """One metadata request with the configured client settings: None when a broker answers,
    else ``(kind, line)``: the kind of failure (``streams.client_errors.classify``) and one
    line saying why. Refused credentials and failed TLS handshakes end the check at once;
    otherwise it retries for ``timeout_s``. librdkafka's retries stay out of the log."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[Any] = []
    config = admin_config(settings, error_cb=errors.append, log_level=0)
    config.pop("logger", None)
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return None
        except KafkaException as exc:
            failure = exc.args[0] if exc.args else exc
        admin.poll(0.1)  # serves error_cb: the reason behind "Broker transport failure"
        fatal = [e for e in errors if classify(e) in ("authentication", "tls")]
        if fatal or time.monotonic() >= deadline:
            break
    found = fatal or errors or [failure]  # librdkafka's own reports say more than list_topics' exception
    kind = classify(found[-1]) if found else "unreachable"
    return kind, ErrorSummary.one_line(settings.bootstrap_servers, found, timeout_s)


EXIT_NO_BROKER = 69  # EX_UNAVAILABLE: no broker answers
EXIT_REFUSED = 77  # EX_NOPERM: the brokers refused the credentials, or the TLS handshake failed


def refusal(settings: Settings, timeout_s: float = 15.0) -> tuple[int, str] | None:
    """The start-up verdict of a process that needs the brokers: None when one answers with
    these settings; else the exit code and one line saying why and what to check:
    ``EXIT_REFUSED`` at once for refused credentials or a failed TLS handshake (retrying would
    not help), ``EXIT_NO_BROKER`` after ``timeout_s`` when nothing answers."""
    failed = check_connection(settings, timeout_s)
    if failed is None:
        return None
    kind, reason = failed
    if kind in ("authentication", "tls"):
        return EXIT_REFUSED, f"{reason}: check the INVENTORY_SASL_* / INVENTORY_SSL_* settings (docs/security.md)"
    hint = (
        "start the local one: `inventory-center local kafka start` (or `make kafka-start`)"
        if settings.uses_local_broker
        else "check INVENTORY_BOOTSTRAP_SERVERS and the client settings (docs/security.md)"
    )
    return EXIT_NO_BROKER, f"{reason}: {hint}"


# --- the schema registry (Confluent-compatible REST) ----------------------------------------


def split_url_credentials(url: str) -> tuple[str, str | None]:
    """``https://user:pass@host/path`` -> (``https://host/path``, ``"user:pass"``); a URL
    without credentials -> (url, None)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    userinfo = f"{urllib.parse.unquote(parts.username or '')}:{urllib.parse.unquote(parts.password or '')}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), userinfo


def redacted_url(url: str | None) -> str | None:
    """A URL safe to log: any credentials in it replaced by ``***``."""
    if url is None:
        return None
    clean, userinfo = split_url_credentials(url)
    if userinfo is None:
        return url
    parts = urllib.parse.urlsplit(clean)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{parts.netloc}"))


def registry_config(settings: Settings) -> dict[str, Any] | None:
    """confluent-kafka's ``SchemaRegistryClient`` configuration, or None without a registry:
    the URL without credentials; basic auth from ``schema_registry_username``/``_password``
    or else from credentials written in the URL; the TLS CA and client certificate."""
    if not settings.schema_registry_url:
        return None
    url, userinfo = split_url_credentials(settings.schema_registry_url)
    if settings.schema_registry_username is not None and settings.schema_registry_password is not None:
        userinfo = f"{settings.schema_registry_username}:{settings.schema_registry_password.get_secret_value()}"
    cfg: dict[str, Any] = {"url": url}
    if userinfo is not None:
        cfg["basic.auth.user.info"] = userinfo
    if settings.schema_registry_ca_file is not None:
        cfg["ssl.ca.location"] = str(settings.schema_registry_ca_file)
    if settings.schema_registry_cert_file is not None and settings.schema_registry_key_file is not None:
        cfg["ssl.certificate.location"] = str(settings.schema_registry_cert_file)
        cfg["ssl.key.location"] = str(settings.schema_registry_key_file)
    return cfg
