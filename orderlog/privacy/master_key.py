"""The master key: it wraps every customer's data key; it is never stored in the store.

Where it comes from, first match wins:
1. `ORDERLOG_MASTER_KEY`: 32 random bytes in base64 (`orderlog keys new-master` prints one);
2. a key file: `ORDERLOG_MASTER_KEY_FILE`, or by default `<sqlite file>.master-key` beside
   a SQLite store (`./orderlog.master-key` for PostgreSQL). When no key exists yet and the
   store holds no encrypted data, the first write creates the file with mode 600 and says
   so once on stderr, so that `make demo` needs no set-up and still stores nothing
   personal in plain text.

The store keeps a check value of the key (an HMAC, from which the key cannot be found),
so that a wrong key is refused instead of silently producing unreadable data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from orderlog.store.location import StoreLocation

KEY_BYTES = 32
CHECK_NAME = "master_key_check"
CHECK_MESSAGE = b"orderlog master key check v1"


class MasterKeyError(Exception):
    """The master key is malformed, missing where it is needed, or not this store's."""


def new_master_key() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def check_value(master_key: bytes) -> str:
    return hmac.new(master_key, CHECK_MESSAGE, hashlib.sha256).hexdigest()


def default_key_file(location: StoreLocation) -> Path:
    """Beside a SQLite store. A store reached through a symbolic link keeps its key beside
    the file itself (where it was made), unless one lies beside the link."""
    if location.kind == "sqlite" and location.path is not None:
        beside = location.path.with_name(location.path.name + ".master-key")
        if location.path.is_symlink() and not beside.exists():
            real = location.path.resolve()
            return real.with_name(real.name + ".master-key")
        return beside
    return Path("orderlog.master-key")


def decode_master_key(text: str, origin: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{origin} is not base64: expected 32 random bytes in base64") from None
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"{origin} holds {len(key)} bytes; a master key is {KEY_BYTES} bytes")
    return key


def find_master_key(env_value: str | None, key_file: Path) -> bytes | None:
    """The configured master key, or None when there is none."""
    if env_value:
        return decode_master_key(env_value, "ORDERLOG_MASTER_KEY")
    if key_file.is_dir():
        raise MasterKeyError(f"master key file {key_file} is a directory; name a file")
    try:
        return decode_master_key(key_file.read_text(encoding="ascii"), f"master key file {key_file}")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise MasterKeyError(f"cannot read master key file {key_file}: {error}") from None


def create_key_file(key_file: Path) -> bytes:
    """Writes a new master key readable only by its owner (mode 600) and returns it; never
    overwrites. The file appears whole or not at all (written aside, then linked into
    place), so that a second process starting at the same moment either creates it or reads
    the complete key the first one made, and both use one key."""
    text = new_master_key()
    aside = key_file.with_name(f".{key_file.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(text + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.link(aside, key_file)
    except FileExistsError:
        return decode_master_key(key_file.read_text(encoding="ascii"), f"master key file {key_file}")
    except OSError as error:
        raise MasterKeyError(f"cannot create master key file {key_file}: {error.strerror}") from None
    finally:
        aside.unlink(missing_ok=True)
    return base64.b64decode(text)
