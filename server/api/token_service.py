"""trialplane.v1.TokenService."""

from __future__ import annotations

from trialplane.v1 import token_pb2, token_service_pb2, token_service_pb2_grpc

from ..domain import listing
from ..domain import principal as who
from ..domain.errors import FailedPrecondition, StaleTrialRun, invalid
from ..domain.tokens import Token, TokenKind, new_secret, validated
from ..domain.trial_lifecycle import is_terminal
from ..services.change_feed import ChangeFeed
from ..storage.interface import Storage
from . import convert
from .errors import rpc

KINDS = convert.EnumMap(token_pb2.TokenKind, "TOKEN_KIND_", TokenKind)


def token_to_proto(t: Token) -> token_pb2.Token:
    return token_pb2.Token(
        id=t.id, name=t.name, kind=KINDS.to_proto(t.kind), scopes=sorted(t.scopes),
        study_ids=sorted(t.study_ids or ()), create_time=convert.timestamp(t.create_time),
        expire_time=convert.timestamp(t.expire_time or None), revoke_time=convert.timestamp(t.revoke_time or None),
        trial_id=t.trial_id, trial_run_id=t.trial_run_id, created_by=t.created_by,
    )


class TokenServicer(token_service_pb2_grpc.TokenServiceServicer):
    def __init__(self, storage: Storage, feed: ChangeFeed, clock, auth_enabled: bool):
        self.storage = storage
        # Tells every replica's caches of a revoked token.
        self.feed = feed
        self.clock = clock
        self.auth_enabled = auth_enabled

    async def _made(self, token: Token) -> token_service_pb2.CreateTokenResponse:
        secret, token.secret_hash = new_secret()
        token.create_time = self.clock()
        token.created_by = who.current().describe()
        stored = await self.storage.create_token(token)
        assert stored is not None  # made unconditionally
        return token_service_pb2.CreateTokenResponse(token=token_to_proto(stored), secret=secret)

    @rpc
    async def CreateToken(self, request, context):
        p = request.token
        now = self.clock()
        expire = convert.optional_timestamp_us(p, "expire_time", "token.expire_time") or 0
        if request.HasField("ttl"):
            if expire:
                raise invalid("ttl", "give ttl or token.expire_time, not both")
            seconds = convert.duration_seconds(request.ttl, "ttl")
            if seconds <= 0:
                raise invalid("ttl", "must be positive")
            expire = now + int(seconds * 1_000_000)
        token = Token(
            name=p.name, kind=KINDS.to_domain(p.kind, "token.kind"), scopes=frozenset(p.scopes),
            study_ids=frozenset(p.study_ids) if p.study_ids else None, expire_time=expire,
        )
        token = validated(token, now)
        for study_id in sorted(token.study_ids or ()):
            await self.storage.get_study(study_id)
        return await self._made(token)

    @rpc
    async def CreateTrialRunToken(self, request, context):
        trial_id = convert.require_id(request.trial_id, "trial_id", "trial")
        if request.trial_run_id < 0:
            raise invalid("trial_run_id", "must not be negative")
        trial = await self.storage.get_trial(trial_id)
        if is_terminal(trial.state):
            raise FailedPrecondition(f"trial {trial_id} is {trial.state.value}: its runs are over",
                                     metadata={"trial_id": trial_id, "state": trial.state})
        if request.trial_run_id and request.trial_run_id != trial.trial_run_id:
            raise StaleTrialRun(trial_id, trial.trial_run_id, request.trial_run_id)
        token = Token(name=f"trial {trial_id} run {trial.trial_run_id}", kind=TokenKind.TRIAL_RUN,
                      trial_id=trial_id, trial_run_id=trial.trial_run_id, parent_id=who.current().token_id or 0)
        return await self._made(token)

    @rpc
    async def ListTokens(self, request, context):
        query = {"inactive": request.include_inactive, "trial_run": request.include_trial_run}
        page = listing.make_page(request.page_token, listing.page_size(request.page_size),
                                 listing.Order("id", descending=True), query)
        tokens, last_key = await self.storage.list_tokens(
            page, request.include_inactive, request.include_trial_run, self.clock())
        return token_service_pb2.ListTokensResponse(
            tokens=[token_to_proto(t) for t in tokens],
            next_page_token=listing.encode_token(page, last_key) if last_key else "",
        )

    @rpc
    async def RevokeToken(self, request, context):
        token_id = convert.require_id(request.id, "id", "token")
        token, children = await self.storage.revoke_token(token_id, self.clock())
        for revoked in [token_id, *children]:
            self.feed.tokens.notify(revoked)
        return token_to_proto(token)

    @rpc
    async def WhoAmI(self, request, context):
        principal = who.current()
        response = token_service_pb2.WhoAmIResponse(principal=principal.describe(), auth_enabled=self.auth_enabled)
        if principal.token_id is not None:
            response.token.CopyFrom(token_to_proto(await self.storage.get_token(principal.token_id)))
        return response
