"""``/v1/owners``: register, read and delete an owner."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..owners import Owners
from .auth import current_owner
from .endpoints import Endpoint
from .http import json_response, read_body
from .schemas import Done, Owner, OwnerRegistration, Registered, owner_json, owner_name


def _owners(request: Request) -> Owners:
    owners: Owners = request.app.state.owners
    return owners


async def register(request: Request) -> Response:
    """Create an owner. The key in the answer is shown once: keep it."""
    registration = OwnerRegistration.model_validate_json(await read_body(request))
    owner, key = await _owners(request).register(registration.name)
    return json_response({"id": owner.id, "key": key}, 201)


async def get_owner(request: Request) -> Response:
    """The caller's own owner record, with its count of unfinished tasks."""
    caller = await current_owner(request)
    owner = await _owners(request).get(caller, owner_name(request.path_params["name"]))
    return json_response(owner_json(owner, request.app.state.tasks.queue_limit))


async def delete_owner(request: Request) -> Response:
    """Delete the owner and its finished tasks; refused while tasks are unfinished."""
    caller = await current_owner(request)
    await _owners(request).delete(caller, owner_name(request.path_params["name"]))
    return json_response({"status": "Done"})


ENDPOINTS = [
    Endpoint(
        "POST",
        "/register",
        register,
        201,
        Registered,
        body=OwnerRegistration,
        auth=False,
        tag="Owner",
    ),
    Endpoint("GET", "/{name}", get_owner, answer=Owner, tag="Owner"),
    Endpoint("DELETE", "/{name}", delete_owner, answer=Done, tag="Owner"),
]
