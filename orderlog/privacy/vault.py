"""Per-customer encryption of personal data, and its erasure (crypto-shredding).

Each customer has data keys of their own (AES-256-GCM), created on first need, stored
only wrapped by the master key in `orderlog_customer_keys`. Personal fields are sealed
into one ciphertext, `v1:<key id>:<base64 nonce+ciphertext>`, before the record is
hashed and stored, so hashes cover ciphertext and erasure never breaks verification.
Erasing a customer deletes their keys: every ciphertext under them becomes noise, with
or without the master key, while every other fact of their orders stays readable.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orderlog.domain.address import address_problems
from orderlog.domain.canonical import canonical_bytes
from orderlog.domain.contract import PERSONAL_ADDRESS_FIELDS
from orderlog.domain.instants import format_instant
from orderlog.privacy.master_key import MasterKeyError
from orderlog.store.database import Database

ERASED = "[erased]"
ENCRYPTED = "[encrypted]"
MASKED = "[masked]"
FORMAT = "v1"
NONCE_BYTES = 12
CACHED_KEYS = 200_000


class Vault:
    """Seals and opens personal data for one store; without a master key it only says
    `[encrypted]`, and it refuses to seal anything."""

    def __init__(self, database: Database, master_key: bytes | None, key_origin: str = ""):
        self._database = database
        self._master = AESGCM(master_key) if master_key else None
        self._key_origin = key_origin
        self._newest_key: dict[str, tuple[str, AESGCM]] = {}
        self._keys_by_id: dict[str, AESGCM | None] = {}

    # ------------------------------------------------------------ sealing

    def seal_address(self, customer_id: str, address: dict[str, str]) -> dict[str, Any]:
        """The stored form of an address: personal parts sealed, validity decided now."""
        problems = address_problems(address)
        personal = {part: address[part] for part in PERSONAL_ADDRESS_FIELDS}
        return {
            "city": address["city"],
            "country": address["country"],
            "encrypted": self.seal_text(customer_id, canonical_bytes(personal).decode()),
            "valid": not problems,
            "problems": problems,
        }

    def seal_text(self, customer_id: str, text: str) -> str:
        key_id, key = self._key_for(customer_id)
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = key.encrypt(nonce, text.encode(), key_id.encode())
        return f"{FORMAT}:{key_id}:{base64.b64encode(nonce + ciphertext).decode()}"

    # ------------------------------------------------------------ opening

    def open_text(self, sealed: str) -> str:
        """The plaintext, or `[erased]` (key destroyed) / `[encrypted]` (no master key)."""
        try:
            _format, key_id, payload = sealed.split(":", 2)
            blob = base64.b64decode(payload)
        except ValueError:
            return ENCRYPTED
        if self._master is None:
            return ENCRYPTED
        key = self._key_by_id(key_id)
        if key is None:
            return ERASED
        try:
            return key.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], key_id.encode()).decode()
        except InvalidTag:
            return ENCRYPTED

    def open_address(self, sealed: dict[str, Any]) -> dict[str, Any]:
        """An address for display: personal parts in clear, or all `[erased]`/`[encrypted]`."""
        text = self.open_text(sealed["encrypted"])
        personal = json.loads(text) if text.startswith("{") else dict.fromkeys(PERSONAL_ADDRESS_FIELDS, text)
        shown = {part: personal[part] for part in PERSONAL_ADDRESS_FIELDS}
        return {**shown, "city": sealed["city"], "country": sealed["country"]}

    # ------------------------------------------------------------ erasing

    def customer_key_count(self, customer_id: str) -> int:
        with self._database.transaction(commit=False) as cursor:
            row = cursor.execute(
                self._database.sql("SELECT COUNT(*) FROM {customer_keys} WHERE customer_id = ?"),
                (customer_id,),
            ).fetchone()
        return int(row[0]) if row else 0

    def destroy_customer_keys(self, customer_id: str) -> int:
        """Deletes every data key of the customer, and the bytes they occupied."""
        database = self._database
        with database.transaction() as cursor:
            rows = cursor.execute(
                database.sql("SELECT key_id FROM {customer_keys} WHERE customer_id = ?"),
                (customer_id,),
            ).fetchall()
            cursor.execute(database.sql("DELETE FROM {customer_keys} WHERE customer_id = ?"), (customer_id,))
        for (key_id,) in rows:
            self._keys_by_id[key_id] = None
        self._newest_key.pop(customer_id, None)
        scrub_deleted_bytes(database)
        return len(rows)

    # ------------------------------------------------------------ keys

    def ensure_keys(self, customer_ids: set[str]) -> None:
        """Loads or creates the data keys of many customers at once (one read, one write).

        Always reads the key table, even for customers whose key this vault already holds:
        another process may have erased a customer since, and a long-running writer must
        never seal a returning customer's new data under a destroyed key.
        """
        wanted = sorted(customer_ids)
        if not wanted:
            return
        master = self._require_master()
        if len(self._keys_by_id) > CACHED_KEYS:  # a long-running writer meets millions of customers
            self._keys_by_id.clear()
            self._newest_key.clear()
        database = self._database
        for customer_id in wanted:
            self._newest_key.pop(customer_id, None)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            with database.transaction(commit=False) as cursor:
                rows = cursor.execute(
                    database.sql(
                        "SELECT customer_id, key_id, wrapped FROM {customer_keys} "
                        f"WHERE customer_id IN ({','.join('?' * len(chunk))}) ORDER BY created_at, key_id"
                    ),
                    chunk,
                ).fetchall()
            for customer_id, key_id, wrapped in rows:  # the newest key of each customer wins
                key = self._keys_by_id.get(key_id) or AESGCM(self._unwrap(master, customer_id, key_id, wrapped))
                self._newest_key[customer_id] = (key_id, key)
                self._keys_by_id[key_id] = key
        self._create_keys([c for c in wanted if c not in self._newest_key], master)

    def _key_for(self, customer_id: str) -> tuple[str, AESGCM]:
        if customer_id not in self._newest_key:
            self.ensure_keys({customer_id})
        return self._newest_key[customer_id]

    def _create_keys(self, customer_ids: list[str], master: AESGCM) -> None:
        """Fresh data keys, committed before anything is sealed with them."""
        if not customer_ids:
            return
        created_at = format_instant(datetime.now(UTC))
        rows = []
        for customer_id in customer_ids:
            key_id = secrets.token_hex(8)
            raw = AESGCM.generate_key(bit_length=256)
            nonce = secrets.token_bytes(NONCE_BYTES)
            wrapped = nonce + master.encrypt(nonce, raw, f"{customer_id}/{key_id}".encode())
            rows.append((key_id, customer_id, wrapped, created_at))
            key = AESGCM(raw)
            self._newest_key[customer_id] = (key_id, key)
            self._keys_by_id[key_id] = key
        with self._database.transaction() as cursor:
            cursor.executemany(
                self._database.sql(
                    "INSERT INTO {customer_keys} (key_id, customer_id, wrapped, created_at) VALUES (?, ?, ?, ?)"
                ),
                rows,
            )

    def _key_by_id(self, key_id: str) -> AESGCM | None:
        if key_id in self._keys_by_id:
            return self._keys_by_id[key_id]
        with self._database.transaction(commit=False) as cursor:
            row = cursor.execute(
                self._database.sql("SELECT customer_id, wrapped FROM {customer_keys} WHERE key_id = ?"),
                (key_id,),
            ).fetchone()
        key = None if row is None else AESGCM(self._unwrap(self._require_master(), row[0], key_id, row[1]))
        self._keys_by_id[key_id] = key
        return key

    @staticmethod
    def _unwrap(master: AESGCM, customer_id: str, key_id: str, wrapped: bytes) -> bytes:
        try:
            return master.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], f"{customer_id}/{key_id}".encode())
        except InvalidTag:
            raise MasterKeyError(f"data key {key_id} does not open with this master key") from None

    def _require_master(self) -> AESGCM:
        if self._master is None:
            raise MasterKeyError(
                "no master key: personal data cannot be encrypted; set ORDERLOG_MASTER_KEY "
                f"or restore the key file{self._key_origin}"
            )
        return self._master


class MaskingVault(Vault):
    """Shows personal parts as `[masked]` to those whose role does not need them, while still
    telling them apart from `[erased]` (the customer was forgotten) and `[encrypted]`."""

    def __init__(self, vault: Vault):
        super().__init__(vault._database, None)
        self._inner = vault

    def open_text(self, sealed: str) -> str:
        shown = self._inner.open_text(sealed)
        return shown if shown in (ERASED, ENCRYPTED) else MASKED


class PlaintextVault(Vault):
    """Keeps personal parts in clear. Only `make bench` uses it, to price the encryption."""

    def ensure_keys(self, customer_ids: set[str]) -> None:
        return None

    def seal_text(self, customer_id: str, text: str) -> str:
        return text


def scrub_deleted_bytes(database: Database) -> None:
    """Make deleted rows unrecoverable from the store's files, as far as the database allows.

    SQLite: connections run with secure_delete (zeroed in place); the WAL, which may still
    hold old page images, is checkpointed and truncated. PostgreSQL: the keys table is
    rewritten (VACUUM FULL), so no dead tuple remains in its files. Copies outside the
    store (backups, PostgreSQL's WAL archive) are the operator's to manage.
    """
    if database.postgres:
        database.vacuum_full("customer_keys")
    else:
        database.checkpoint_wal()
