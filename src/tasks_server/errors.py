"""The one exception hierarchy of Tasks Server.

Services and stores raise these; the api translates them into HTTP answers in one place
(``api/errors.py``)::

    TasksError
    ├── InvalidInput            400  a value breaks a rule the schema cannot express
    ├── AuthenticationError     403  missing or malformed credentials, unknown owner
    │   └── WrongKey            401  the key does not match the owner
    ├── NotFound                404  no such owner or task (for this owner)
    ├── Conflict                409  a unique name is taken; the task is being delivered
    ├── TooLarge                413  the request body is over the limit
    ├── PreconditionFailed      422  an invalid state transition, a limit reached
    └── StoreError              500  the storage backend failed
"""

from __future__ import annotations

from typing import Any


class TasksError(Exception):
    """Internal server error"""

    def __init__(self, message: str | None = None, *, detail: Any = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.detail = detail
        super().__init__(self.message)


class InvalidInput(TasksError):
    """A request includes an invalid credential or value"""


class AuthenticationError(TasksError):
    """The server did not accept valid authentication"""


class WrongKey(AuthenticationError):
    """The request did not include valid authentication"""


class NotFound(TasksError):
    """The requested resource does not exist"""


class Conflict(TasksError):
    """The request cannot be completed due to a conflict"""


class TooLarge(TasksError):
    """The request is too large"""


class PreconditionFailed(TasksError):
    """The request did not meet one of its preconditions"""


class StoreError(TasksError):
    """The storage backend failed"""
