"""``/v1/owners``: register, read and delete an owner."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ..owners import Owners
from ..store import OwnerRow
from .auth import current_owner
from .http import json_response, read_body
from .schemas import Done, Owner, OwnerRegistration, Registered, owner_json, owner_name

router = APIRouter(tags=["Owner"])
Caller = Annotated[OwnerRow, Depends(current_owner)]


def _owners(request: Request) -> Owners:
    owners: Owners = request.app.state.owners
    return owners


@router.post(
    "/register",
    status_code=201,
    response_model=Registered,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": OwnerRegistration.model_json_schema()}},
        }
    },
)
async def register(request: Request) -> Response:
    """Create an owner. The key in the answer is shown once."""
    registration = OwnerRegistration.model_validate_json(await read_body(request))
    owner, key = await _owners(request).register(registration.name)
    return json_response({"id": owner.id, "key": key}, 201)


@router.get("/{name}", response_model=Owner)
async def get_owner(name: str, request: Request, caller: Caller) -> Response:
    owner = await _owners(request).get(caller, owner_name(name))
    return json_response(owner_json(owner, request.app.state.tasks.queue_limit))


@router.delete("/{name}", response_model=Done)
async def delete_owner(name: str, request: Request, caller: Caller) -> Response:
    """Delete the owner and its finished tasks; refused while tasks are unfinished."""
    await _owners(request).delete(caller, owner_name(name))
    return json_response({"status": "Done"})
