"""`trialplane tokens ...`: make, list and revoke tokens, and say whose the
current one is. A new token's secret is printed once, on stdout alone with
-o table, so `export TRIALPLANE_TOKEN=$(trialplane tokens create ...)` works."""

from __future__ import annotations

import re

from trialplane.v1 import token_pb2

from ..sdk import Client
from ..sdk.values import enum_name
from .output import Printer, Table, when

TOKEN_TABLE = Table(["ID", "NAME", "KIND", "SCOPES", "STUDIES", "CREATED", "EXPIRES", "REVOKED", "BY"], flex="NAME",
                    right={"ID"})
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class BadDuration(ValueError):
    pass


def parse_duration(text: str) -> int:
    """Seconds in '90s', '15m', '12h', '30d', '2w'."""
    found = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text or "")
    if not found or int(found.group(1)) <= 0:
        raise BadDuration(f"--expires-in {text!r}: give a positive count and a unit, like 30d, 12h or 15m")
    return int(found.group(1)) * _UNITS[found.group(2)]


def _kind(token) -> str:
    return enum_name(token_pb2.TokenKind, "TOKEN_KIND_", token.kind)


def _row(token) -> list[str]:
    return [str(token.id), token.name, _kind(token), ",".join(token.scopes) or "-",
            ",".join(map(str, token.study_ids)) or "all", when(token.create_time),
            when(token.expire_time) if token.HasField("expire_time") else "never",
            when(token.revoke_time) if token.HasField("revoke_time") else "-", token.created_by]


def tokens_create(client: Client, args, out: Printer) -> int:
    made = client.tokens.create(args.name, args.scope or ["read"], studies=args.study or [], service=args.service,
                                ttl_seconds=parse_duration(args.expires_in) if args.expires_in else None)
    if out.as_json:
        out.json(made)
    else:
        out.text(made.secret)
    return 0


def tokens_list(client: Client, args, out: Printer) -> int:
    out.items(client.tokens.list(include_inactive=args.all, include_trial_run=args.all), TOKEN_TABLE, _row)
    return 0


def tokens_revoke(client: Client, args, out: Printer) -> int:
    out.items([client.tokens.revoke(args.id)], TOKEN_TABLE, _row)
    return 0


def tokens_whoami(client: Client, args, out: Printer) -> int:
    me = client.tokens.whoami()
    if out.as_json:
        out.json(me)
    elif not me.auth_enabled:
        out.text(f"{me.principal} (the server at {client.address} asks for no token)")
    else:
        out.text(f"{me.principal}: scopes {','.join(me.token.scopes) or '-'}, "
                 f"studies {','.join(map(str, me.token.study_ids)) or 'all'}")
    return 0
