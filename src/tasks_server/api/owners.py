"""``/v1/owners``: register, read and delete an owner."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..owners import Owners
from .auth import current_owner
from .endpoints import Endpoint
from .http import json_response, read_body
from .schemas import (
    Done,
    Owner,
    OwnerRegistration,
    Registered,
    Rotation,
    SigningSecret,
    owner_json,
    owner_name,
    secret_json,
)


def _owners(request: Request) -> Owners:
    owners: Owners = request.app.state.owners
    return owners


async def register(request: Request) -> Response:
    """Create an owner. The key in the answer is shown once: keep it."""
    registration = OwnerRegistration.model_validate_json(await read_body(request))
    owner, key, secret = await _owners(request).register(registration.name)
    return json_response({"id": owner.id, "key": key, "signingSecret": secret}, 201)


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


async def signing_secrets(request: Request) -> Response:
    """The secrets that sign outgoing requests now, newest (current) first."""
    caller = await current_owner(request)
    name = owner_name(request.path_params["name"])
    rows = await _owners(request).signing_secrets(caller, name)
    return json_response([secret_json(row) for row in rows])


async def rotate_signing_secret(request: Request) -> Response:
    """A new current secret; the others keep signing for ``overlapSeconds`` (default 1 day)."""
    caller = await current_owner(request)
    name = owner_name(request.path_params["name"])
    body = await read_body(request)
    rotation = Rotation.model_validate_json(body or b"{}")
    rows = await _owners(request).rotate_signing_secret(
        caller, name, rotation.overlapSeconds * 1000
    )
    return json_response([secret_json(row) for row in rows], 201)


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
    Endpoint(
        "GET",
        "/{name}/signing-secrets",
        signing_secrets,
        answer=SigningSecret,
        many=True,
        tag="Owner",
    ),
    Endpoint(
        "POST",
        "/{name}/signing-secrets/rotate",
        rotate_signing_secret,
        201,
        answer=SigningSecret,
        many=True,
        body=Rotation,
        tag="Owner",
    ),
]
