"""The serializers ``DBOS["SERIALIZER"]`` can name, and the protocol they share.

``JSONSerializer`` (the default) writes the tagged JSON of ``codec.py`` and never runs stored
code when reading. ``PickleSerializer`` is the opt-in for trusted databases. ``EncryptedSerializer``
wraps either with Fernet. Settings name them by their public paths
(``"django_dbos.serialization.JSONSerializer"``), which the package re-exports.
"""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from django_dbos.conf import dbos_settings
from django_dbos.errors import DBOSConfigurationError, DBOSSerializationError
from django_dbos.serialization.codec import b64, decode, encode, type_name


class Serializer(Protocol):
    """Turns values into text for the system tables and back; chosen by ``DBOS["SERIALIZER"]``."""

    name: str

    def dumps(self, value: Any) -> str: ...

    def loads(self, text: str) -> Any: ...


class JSONSerializer:
    """The default: JSON text, tagged where JSON lacks a type; reading never runs stored code."""

    name = "json"

    def dumps(self, value: Any) -> str:
        """Raise ``DBOSSerializationError`` naming the first unsupported value and where it sat."""
        return encode(value)

    def loads(self, text: str) -> Any:
        return decode(text)


class PickleSerializer:
    """Base64 text of a pickle: any picklable value, for databases you trust.

    Unpickling runs code chosen by whoever wrote the row, so anyone who can write to the system
    tables can run code in every worker. Opt in with
    ``DBOS["SERIALIZER"] = "django_dbos.serialization.PickleSerializer"``.
    """

    name = "pickle"

    def dumps(self, value: Any) -> str:
        try:
            return b64(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:  # PicklingError, TypeError, or a __reduce__ that fails
            name = type_name(type(value))
            raise DBOSSerializationError(
                f"Cannot pickle a {name!r} value ({exc}); pass picklable data.", type_name=name
            ) from None

    def loads(self, text: str) -> Any:
        try:
            return pickle.loads(base64.b64decode(text))  # noqa: S301 - the documented opt-in
        except Exception as exc:
            raise DBOSSerializationError(f"A stored value cannot be unpickled ({exc}).") from exc


class EncryptedSerializer:
    """Fernet encryption around another serializer (default: JSON), with key rotation.

    Encrypts with the first key and decrypts with any, so a new key goes first and old ones stay
    until ``rotate()`` has re-encrypted their rows. Fernet also authenticates: a row edited in the
    database fails to decrypt instead of being decoded. Rows without the ``fernet:`` prefix
    (written before encryption was turned on) still load when the inner serializer is JSON.
    """

    name = "encrypted"
    prefix = "fernet:"

    def __init__(self, inner: Serializer | None = None, keys: Sequence[str] | None = None) -> None:
        """Raise ``DBOSConfigurationError`` without ``cryptography`` or without usable keys."""
        try:
            from cryptography.fernet import Fernet, InvalidToken, MultiFernet
        except ImportError:
            raise DBOSConfigurationError(
                "EncryptedSerializer needs the cryptography package: "
                "pip install 'django-dbos-workflows[crypto]'."
            ) from None
        keys = dbos_settings().ENCRYPTION_KEYS if keys is None else keys
        keys = [keys] if isinstance(keys, str | bytes) else keys
        make = "make one with cryptography.fernet.Fernet.generate_key()"
        if not keys:
            raise DBOSConfigurationError(
                f"EncryptedSerializer has no keys: set DBOS['ENCRYPTION_KEYS'] to a list of Fernet "
                f"keys, newest first ({make})."
            )
        fernets = []
        for i, key in enumerate(keys):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):  # the message must not echo the secret
                raise DBOSConfigurationError(
                    f"DBOS['ENCRYPTION_KEYS'][{i}] is not a Fernet key; {make}."
                ) from None
        self.inner: Serializer = inner if inner is not None else JSONSerializer()
        self._fernet, self._invalid = MultiFernet(fernets), (InvalidToken, ValueError)

    def dumps(self, value: Any) -> str:
        return self._encrypt(self.inner.dumps(value))

    def loads(self, text: str) -> Any:
        if not text.startswith(self.prefix) and isinstance(self.inner, JSONSerializer):
            return self.inner.loads(text)
        return self.inner.loads(self._open(text, self._fernet.decrypt).decode())

    def rotate(self, text: str) -> str:
        """The same value encrypted with the newest key (unencrypted JSON rows get encrypted)."""
        if not text.startswith(self.prefix) and isinstance(self.inner, JSONSerializer):
            return self._encrypt(text)
        return self.prefix + self._open(text, self._fernet.rotate).decode("ascii")

    def _encrypt(self, text: str) -> str:
        return self.prefix + self._fernet.encrypt(text.encode()).decode("ascii")

    def _open(self, text: str, op: Callable[[bytes], bytes]) -> bytes:
        if not text.startswith(self.prefix):
            raise DBOSSerializationError("A stored value is not encrypted (no 'fernet:' prefix).")
        try:
            return op(text[len(self.prefix) :].encode("ascii"))
        except self._invalid:
            raise DBOSSerializationError(
                "A stored value cannot be decrypted with any of DBOS['ENCRYPTION_KEYS']; "
                "was the key it was written with removed?"
            ) from None
