from .base import (
    AttemptResult,
    AttemptRow,
    ClaimBatch,
    Claimed,
    OwnerRow,
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
    "Store",
    "TaskQuery",
    "TaskRow",
]
