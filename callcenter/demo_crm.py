"""A tiny stand-in CRM for the demo flow's `http` node: ``POST /demo/crm/lookup {"account": ...}``.

Mounted by `callcenter serve` when ``[ivr] demo_crm = true`` (the demo config sets it), so the
demo shows a real HTTP lookup without another service. Not for production: no auth, fake data.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

ACCOUNTS = {
    "1234": {"customer": {"name": "Ann Smith", "tier": "gold"}, "balance": 42.5},
    "5678": {"customer": {"name": "Bo Chen", "tier": "standard"}, "balance": 1200},
    "12345678": {"customer": {"name": "Carla Diaz", "tier": "vip"}, "balance": 0},
}

router = APIRouter(prefix="/demo/crm", tags=["demo"])


class Lookup(BaseModel):
    account: str


@router.post("/lookup")
async def lookup(body: Lookup) -> dict[str, object]:
    """The customer behind an account number (a POST: the number stays out of URLs and access logs)."""
    account = body.account
    found = ACCOUNTS.get(account)
    if found is None:
        raise HTTPException(404, "no such account")
    return {"account": account, **found}
