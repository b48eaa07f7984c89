"""`trialplane tokens ...`: make, list and revoke tokens, and say whose the
current one is. A new token's secret is printed once, on stdout alone with
-o table, so `export TRIALPLANE_TOKEN=$(trialplane tokens create ...)` works."""

from __future__ import annotations

import re

from google.protobuf import duration_pb2
from trialplane.v1 import token_pb2
from trialplane.v1 import token_service_pb2 as tk

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
    token = token_pb2.Token(
        name=args.name, kind=token_pb2.TOKEN_KIND_SERVICE if args.service else token_pb2.TOKEN_KIND_USER,
        scopes=args.scope or ["read"], study_ids=args.study or [],
    )
    request = tk.CreateTokenRequest(token=token)
    if args.expires_in:
        request.ttl.CopyFrom(duration_pb2.Duration(seconds=parse_duration(args.expires_in)))
    made = client.stubs.tokens.CreateToken(request)
    if out.as_json:
        out.json(made)
    else:
        out.text(made.secret)
    return 0


def tokens_list(client: Client, args, out: Printer) -> int:
    def pages():
        page_token = ""
        while True:
            page = client.stubs.tokens.ListTokens(tk.ListTokensRequest(
                include_inactive=args.all, include_trial_run=args.all, page_token=page_token))
            yield from page.tokens
            page_token = page.next_page_token
            if not page_token:
                return

    out.items(pages(), TOKEN_TABLE, _row)
    return 0


def tokens_revoke(client: Client, args, out: Printer) -> int:
    revoked = client.stubs.tokens.RevokeToken(tk.RevokeTokenRequest(id=args.id))
    out.items([revoked], TOKEN_TABLE, _row)
    return 0


def tokens_whoami(client: Client, args, out: Printer) -> int:
    me = client.stubs.tokens.WhoAmI(tk.WhoAmIRequest())
    if out.as_json:
        out.json(me)
    elif not me.auth_enabled:
        out.text(f"{me.principal} (the server at {client.address} asks for no token)")
    else:
        out.text(f"{me.principal}: scopes {','.join(me.token.scopes) or '-'}, "
                 f"studies {','.join(map(str, me.token.study_ids)) or 'all'}")
    return 0
