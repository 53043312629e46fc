"""Schema ids for the Confluent wire format: from schemas/ itself, or from a registry server.

Every Avro message carries the id of the schema it was written with. By default the ids are
derived from the schema files (a stable number from each file's canonical content, the
same in every process and every release that ships that file), so nothing needs to run
beside orderlog. With `--schema-registry URL`, a Confluent-compatible registry assigns
them: every schema in schemas/ is registered once, under the subject `<topic>-<record
name>` (TopicRecordNameStrategy, since one topic carries one schema per event type).
Either way a consumer finds a writer's schema by its id, and reads it with the latest
version of the same type (schema resolution: every version reads every earlier one).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import fastavro

from orderlog.avro import SCHEMA_DIRECTORY, declared_schemas, schema_files
from orderlog.kafka import KafkaError


@dataclass(frozen=True)
class KnownSchema:
    name: str
    """The file stem: `PaymentCaptured` (a stored record) or `PaymentCapturedEnvelope` (inbound)."""
    version: int
    schema: dict[str, Any]
    parsed: Any


class SchemaIds(Protocol):
    def id_of(self, name: str) -> int:
        """The id of the latest version of schema `name`, to write with."""

    def by_id(self, schema_id: int) -> KnownSchema:
        """The schema written under an id (KafkaError if it is unknown)."""


def local_id(schema: dict[str, Any]) -> int:
    """A schema's id derived from its content: 31 bits of SHA-256 of its canonical JSON."""
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()
    return int.from_bytes(hashlib.sha256(canonical).digest()[:4], "big") & 0x7FFFFFFF


def every_version(directory: Path = SCHEMA_DIRECTORY) -> list[KnownSchema]:
    """Every version of every declared schema, from the files."""
    found = []
    for name in declared_schemas():
        for version, path in enumerate(schema_files(name, directory), start=1):
            schema = json.loads(path.read_text(encoding="utf-8"))
            found.append(KnownSchema(name, version, schema, fastavro.parse_schema(schema)))
    return found


class LocalSchemaIds:
    """Ids derived from schemas/: no registry server needed."""

    def __init__(self, directory: Path = SCHEMA_DIRECTORY):
        self._by_id: dict[int, KnownSchema] = {}
        self._latest: dict[str, int] = {}
        for known in every_version(directory):
            schema_id = local_id(known.schema)
            self._by_id[schema_id] = known
            self._latest[known.name] = schema_id

    def id_of(self, name: str) -> int:
        return self._latest[name]

    def by_id(self, schema_id: int) -> KnownSchema:
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise KafkaError(f"schema id {schema_id} is not one of orderlog's schemas (schemas/)") from None


class RegistrySchemaIds:
    """Ids from a Confluent-compatible schema registry (`mock://...` for tests)."""

    def __init__(self, client: Any, topic: str, directory: Path = SCHEMA_DIRECTORY):
        from confluent_kafka.schema_registry import Schema

        self._client = client
        self._by_id: dict[int, KnownSchema] = {}
        self._latest: dict[str, int] = {}
        for known in every_version(directory):
            subject = f"{topic}-{known.schema['namespace']}.{known.schema['name']}"
            schema_id = client.register_schema(subject, Schema(json.dumps(known.schema), "AVRO"))
            self._by_id[schema_id] = known
            self._latest[known.name] = schema_id

    def id_of(self, name: str) -> int:
        return self._latest[name]

    def by_id(self, schema_id: int) -> KnownSchema:
        if schema_id in self._by_id:
            return self._by_id[schema_id]
        try:
            registered = self._client.get_schema(schema_id)
        except Exception as error:  # the client raises its own errors for an unknown id
            raise KafkaError(f"schema id {schema_id} is not in the schema registry: {error}") from None
        schema = json.loads(registered.schema_str)
        known = KnownSchema(schema["name"], 0, schema, fastavro.parse_schema(schema))
        self._by_id[schema_id] = known
        return known


def schema_ids(registry_url: str | None, topic: str) -> SchemaIds:
    """The ids to use: a registry server's when one is configured, else the local ones."""
    if registry_url is None:
        return LocalSchemaIds()
    from confluent_kafka.schema_registry import SchemaRegistryClient

    try:
        return RegistrySchemaIds(SchemaRegistryClient.new_client({"url": registry_url}), topic)
    except Exception as error:  # connection refused, bad URL, an incompatible schema: all one line
        raise KafkaError(f"cannot use the schema registry at {registry_url}: {error}") from None
