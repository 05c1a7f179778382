from .base import (
    AttemptResult,
    AttemptRow,
    ClaimBatch,
    Claimed,
    OwnerRow,
    SigningSecretRow,
    Store,
    TaskQuery,
    TaskRow,
)

__all__ = [
    "AttemptResult",
    "AttemptRow",
    "ClaimBatch",
    "Claimed",
    "OwnerRow",
    "SigningSecretRow",
    "Store",
    "TaskQuery",
    "TaskRow",
]
