"""How this deployment frames Avro on its topics: decided once, from the settings.

No schema registry: the Avro single-object encoding (``C3 01`` + the writer schema's 64-bit
fingerprint), which any Avro consumer holding our .avsc files can decode. ``schema_registry_url``
set: Confluent's wire format (``00`` + 4-byte schema id) on every topic the pipeline produces to
or reads (inputs, internal, outputs, dead letters), schemas registered on first use; subjects
``<topic>-value`` for a topic of one record type, ``<topic>-<record fullname>`` for one carrying
several (``subject_strategy``; a BACKWARD registry refuses a second type under one subject:
README, "Connecting a source system"). Reading accepts both framings whatever the settings (the
first byte tells them apart). Table values stay single-object: the workers' private state. The
registry client's URL, basic auth and TLS come from ``kafka_config.registry_config``;
``registry_url`` has any credentials redacted and is the only form logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from config.settings import Settings
from schemas.codec import CONFLUENT_MAGIC, Codec, ConfluentFraming, decode, encode
from streams.kafka_config import redacted_url, registry_config
from streams.topics import Topics
from tables import state as _state  # noqa: F401 - registers the state records (changelogs carry them)


def subject_strategy(topics: Topics) -> Callable[[Any, str | None], str]:
    """The registry subject of a record on a topic: ``<topic>-value`` where the topic carries
    one record type, ``<topic>-<record fullname>`` where it carries several."""
    single = {topics.name(spec) for spec in topics.specs if len(spec.records) == 1}

    def subject(ctx: Any, record_name: str | None) -> str:
        return f"{ctx.topic}-value" if ctx.topic in single else f"{ctx.topic}-{record_name}"

    return subject


class RegistryUnavailable(RuntimeError):
    """The schema registry did not answer: retry later, the record is not at fault."""


class Wire:
    """encode(obj, topic) / decode(bytes) for this deployment's topics."""

    def __init__(self, settings: Settings) -> None:
        self.registry_url = redacted_url(settings.schema_registry_url)  # what may be logged
        self._codec: Codec | None = None
        config = registry_config(settings)
        if config is not None:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            client = SchemaRegistryClient(config)
            self._codec = Codec(ConfluentFraming(client, subject_strategy(Topics(settings))))

    def register_all(self, topics: Topics) -> int:
        """Register (or look up) the schema of every record type on every topic, so that
        encoding never waits on the registry once the worker runs. Returns how many."""
        if self._codec is None:
            return 0
        from schemas.avro_model import contract_classes

        classes = contract_classes()
        framing, registry = self._codec.framing, self._codec.registry
        count = 0
        for spec in topics.specs:
            for name in spec.records:
                try:
                    framing.header(registry.record_type(classes[name]), topics.name(spec))
                except Exception as exc:
                    if _is_unreachable(exc):
                        raise RegistryUnavailable(f"schema registry {self.registry_url}: {exc}") from exc
                    raise
                count += 1
        return count

    def encode(self, obj: Any, topic: str) -> bytes:
        if self._codec is None:
            return encode(obj)
        try:
            return self._codec.encode(obj, topic=topic)
        except Exception as exc:  # the registry refused the schema (409) or did not answer
            if _is_unreachable(exc):
                raise RegistryUnavailable(f"schema registry {self.registry_url}: {exc}") from exc
            raise

    def decode(self, data: bytes, *, validate: bool = True) -> Any:
        if self._codec is not None and data[:1] == CONFLUENT_MAGIC:
            try:
                return self._codec.decode(data, validate=validate)
            except Exception as exc:
                if _is_unreachable(exc):
                    raise RegistryUnavailable(f"schema registry {self.registry_url}: {exc}") from exc
                raise
        return decode(data, validate=validate)


def _is_unreachable(exc: BaseException) -> bool:
    """A transport failure or a 5xx from the registry, anywhere in the exception's chain."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        name = type(current).__name__
        if name in {"ConnectError", "ConnectTimeout", "ReadTimeout", "RemoteProtocolError", "ConnectionError"}:
            return True
        status = getattr(current, "http_status_code", None)
        if isinstance(status, int) and status >= 500:
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def wait_for_registry(attempt: int) -> float:
    """Back-off before the next try when the registry is unavailable (seconds), capped."""
    return min(30.0, 0.5 * 2.0 ** min(attempt, 6))
