"""The sender's per-account rate limiter: GCRA in Redis, shared by every sender process.

GCRA (the generic cell rate algorithm) keeps one number per creator account, the theoretical
arrival time (TAT): when the account's bucket would be empty again if sending at exactly the
configured rate. A request at ``now`` is allowed when ``max(TAT, now) + T - burst*T <= now``
(T = 1/rate), which allows ``burst`` sends at once and then one every T: never more than
``burst + rate*t`` in any window of length t. Being one number, it needs no list of timestamps
and no background refill.

Why one Lua script on one key: the read-decide-write must be atomic across many processes, and
a script is (no WATCH/MULTI retries). Why Redis's ``TIME``: processes on different machines have
different clocks; the Redis server holding the key is the one clock they all agree on. Why the
hash tag ``{account}``: a script may only touch keys of one Redis Cluster slot, and the tag pins
the key's slot to the account whatever the prefix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import redis.asyncio as redis

from adapters.config import Settings
from application.sending import LimiterUnavailable, TokenAnswer

# KEYS[1]: the account's key (holds the TAT in µs). ARGV[1]: emission interval T in µs;
# ARGV[2]: burst; ARGV[3]: "now" in µs, for the tests of the arithmetic only (else Redis TIME).
# Returns {wait in µs (0 = allowed, a token taken), the server time of the decision in µs}.
# Times are integral µs: doubles hold them exactly (2^53 µs is 285 years), and integers
# survive Redis's Lua-number-to-integer reply conversion.
_GCRA_LUA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now
if ARGV[3] then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {allow_at - now, now}  -- refused: nothing written, nothing taken
end
-- '%.0f': tostring would print 1.7e+15 and lose digits. The key lives until new_tat: after
-- that a missing key (TAT = now) means the same as the stored one, a full bucket.
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
           'PX', math.ceil((new_tat - now) / 1000))
return {0, now}
"""

_MICROS = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A limiter that takes longer than this to answer is treated as away: a sender never hangs on
# a Redis that accepted the connection and went silent.
LIMITER_TIMEOUT = 2.0
_UNAVAILABLE = (redis.RedisError, OSError, TimeoutError)


class GcraRateLimiter:
    """The ``RateLimiter`` port on Redis (or Redis Cluster): ``rate`` sends per second per
    creator account, ``burst`` at once, with per-account overrides (rate, burst)."""

    def __init__(
        self,
        redis_client: redis.Redis | redis.RedisCluster,
        *,
        default_rate: float,
        default_burst: int,
        per_account: Mapping[str, tuple[float, int]] | None = None,
        key_prefix: str = "fancrm:rl",
    ) -> None:
        self._default = _limit(default_rate, default_burst)
        self._per_account = {
            account: _limit(rate, burst) for account, (rate, burst) in (per_account or {}).items()
        }
        self._key_prefix = key_prefix
        self._client = redis_client
        # Registered once: redis-py sends EVALSHA and loads the script only on NOSCRIPT (a new
        # or restarted server), so the script text crosses the network once per server.
        self._script = redis_client.register_script(_GCRA_LUA)

    def key(self, account: str) -> str:
        return f"{self._key_prefix}:{{{account}}}"

    async def try_acquire(self, account: str) -> TokenAnswer:
        try:
            async with asyncio.timeout(LIMITER_TIMEOUT):
                wait_us, server_now_us = await self.evaluate(account)
        except _UNAVAILABLE as error:
            raise LimiterUnavailable(_describe(error)) from error
        return TokenAnswer(wait=wait_us / _MICROS, at=redis_time(server_now_us))

    async def check(self) -> None:
        try:
            async with asyncio.timeout(LIMITER_TIMEOUT):
                await self._client.ping()
        except _UNAVAILABLE as error:
            raise LimiterUnavailable(_describe(error)) from error

    async def evaluate(self, account: str, *, now_us: int | None = None) -> tuple[int, int]:
        """The script's answer: (µs to wait, 0 if a token was taken; Redis's time in µs).
        ``now_us`` replaces Redis's clock: for tests of the arithmetic only."""
        interval_us, burst = self._per_account.get(account, self._default)
        args: list[int] = [interval_us, burst] if now_us is None else [interval_us, burst, now_us]
        wait_us, server_now_us = await self._script(keys=[self.key(account)], args=args)
        return int(wait_us), int(server_now_us)


def redis_time(micros: int) -> datetime:
    """Redis's TIME in µs as an aware datetime, exactly (no float on the way)."""
    return _EPOCH + timedelta(microseconds=micros)


class DisabledRateLimiter:
    """``RATE_LIMITER_ENABLED=false``: every send may go (the platform's 429s still apply)."""

    async def try_acquire(self, account: str) -> TokenAnswer:
        return TokenAnswer(wait=0.0)  # no clock of its own: nothing decided, nothing to show

    async def check(self) -> None:
        return None


def rate_limiter_from(
    settings: Settings, redis_client: redis.Redis | redis.RedisCluster | None
) -> GcraRateLimiter | DisabledRateLimiter:
    if not settings.rate_limiter_enabled:
        return DisabledRateLimiter()
    if redis_client is None:
        raise SystemExit("the rate limiter needs REDIS_URL (or set RATE_LIMITER_ENABLED=false)")
    return GcraRateLimiter(
        redis_client,
        default_rate=settings.rate_limit_per_second,
        default_burst=settings.rate_limit_burst,
        per_account={account: (rate, burst) for account, rate, burst in settings.rate_limits},
    )


def fansly_rate_limiter_from(
    settings: Settings, redis_client: redis.Redis | redis.RedisCluster | None
) -> GcraRateLimiter | DisabledRateLimiter:
    """Fansly's limiter: its own rate, burst and keys (``fancrm:rl:fansly:{account}``), so an
    account sending on both platforms has a bucket on each, neither spending the other's."""
    if not settings.rate_limiter_enabled:
        return DisabledRateLimiter()
    if redis_client is None:
        raise SystemExit("the rate limiter needs REDIS_URL (or set RATE_LIMITER_ENABLED=false)")
    return GcraRateLimiter(
        redis_client,
        default_rate=settings.fansly_rate_limit_per_second,
        default_burst=settings.fansly_rate_limit_burst,
        key_prefix="fancrm:rl:fansly",
    )


def _limit(rate: float, burst: int) -> tuple[int, int]:
    """(emission interval in whole µs, burst), refusing limits that would never allow a send."""
    if rate <= 0 or burst < 1:
        raise ValueError(f"a rate limit needs rate > 0 and burst >= 1, not {rate}/{burst}")
    return max(1, round(_MICROS / rate)), int(burst)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {LIMITER_TIMEOUT:g} s"
    return f"{type(error).__name__}: {error}"[:300]
