"""Client configurations derived from the one Settings object.

One trap lives here: Faust (aiokafka) partitions keys with murmur2, like the Java client;
librdkafka's default is CRC32. Our confluent-kafka producers set ``murmur2_random`` so that a
key lands on the same partition whichever client wrote it: the order agent's three input
topics must agree on where an orderNo lives.
"""

from __future__ import annotations

from typing import Any

from config.settings import Settings


def _security(settings: Settings) -> dict[str, Any]:
    cfg: dict[str, Any] = {"security.protocol": settings.security_protocol}
    if settings.sasl_mechanism:
        cfg["sasl.mechanism"] = settings.sasl_mechanism
        cfg["sasl.username"] = settings.sasl_username or ""
        cfg["sasl.password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    return cfg


def admin_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap_servers, **_security(settings)}


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        **_security(settings),
        **overrides,
    }


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **_security(settings),
        **overrides,
    }


def faust_broker_credentials(settings: Settings) -> Any:
    """Faust's credentials object for SASL/SSL clusters, or None for PLAINTEXT."""
    if settings.security_protocol == "PLAINTEXT":
        return None
    import ssl

    import faust

    context = ssl.create_default_context() if "SSL" in settings.security_protocol else None
    if settings.sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.sasl_username or "",
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else "",
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context)
