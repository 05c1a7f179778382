"""Owners: the tenants. Each holds a secret key and sees only its own tasks."""

from __future__ import annotations

import hmac

from .clock import Clock
from .errors import AuthenticationError, NotFound, PreconditionFailed, WrongKey
from .ids import hash_key, new_key, new_owner_id
from .signing import new_secret
from .store import OwnerRow, SigningSecretRow, Store


class Owners:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._known: dict[str, OwnerRow] = {}

    async def register(self, name: str) -> tuple[OwnerRow, str, str]:
        """A new owner, its key and its signing secret.

        The key is shown once and stored as a digest; the secret can be read again.
        """
        now = self._clock.now_ms()
        key, secret = new_key(), new_secret()
        owner = OwnerRow(id=new_owner_id(now), name=name, key_hash=hash_key(key), created_at=now)
        await self._store.add_owner(owner, secret)
        return owner, key, secret

    async def signing_secrets(self, owner: OwnerRow, name: str) -> list[SigningSecretRow]:
        self._check_name(owner, name)
        return await self._store.signing_secrets(owner.id, self._clock.now_ms())

    async def rotate_signing_secret(
        self, owner: OwnerRow, name: str, overlap_ms: int
    ) -> list[SigningSecretRow]:
        """A new current secret; the others keep signing for ``overlap_ms``."""
        self._check_name(owner, name)
        now = self._clock.now_ms()
        return await self._store.rotate_signing_secret(
            owner.id, new_secret(), now_ms=now, overlap_ms=overlap_ms
        )

    @staticmethod
    def _check_name(owner: OwnerRow, name: str) -> None:
        if name != owner.name:
            raise NotFound("Owner not found")

    async def authenticate(self, owner_id: str, key: str) -> OwnerRow:
        owner = self._known.get(owner_id) or await self._store.get_owner(owner_id)
        if owner is None:
            raise AuthenticationError()
        if not hmac.compare_digest(owner.key_hash, hash_key(key)):
            raise WrongKey()
        self._known[owner_id] = owner
        return owner

    async def get(self, owner: OwnerRow, name: str) -> OwnerRow:
        fresh = await self._store.get_owner(owner.id) if name == owner.name else None
        if fresh is None:
            raise NotFound("Owner not found")
        return fresh

    async def delete(self, owner: OwnerRow, name: str) -> None:
        self._check_name(owner, name)
        if not await self._store.delete_owner(owner.id):
            raise PreconditionFailed("The owner still has unfinished tasks in queue")
        self._known.pop(owner.id, None)
