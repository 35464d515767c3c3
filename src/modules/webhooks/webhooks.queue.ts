import type { RedisClient } from '../../shared/redis.ts'

// The schedule of deliveries lives in Redis (append-only file on): a sorted set of delivery ids
// scored by when each is due. MongoDB holds the deliveries themselves; the schedule can be rebuilt
// from their pending ones, and is (at start, and whenever its marker is missing).

const KEYS = {
  schedule: 'wh:schedule',
  /** Set once the schedule was rebuilt from MongoDB; gone after a Redis data loss. */
  seeded: 'wh:schedule:seeded',
  /** Sides of each (subscription, lot) threshold: `${subscriptionId}|${lotId}` -> `${previousSide}|${side}|${afterChange}`. */
  sides: 'wh:threshold-sides',
  failures: (subscriptionId: string) => `wh:failures:{${subscriptionId}}`,
  failingSince: (subscriptionId: string) => `wh:failing-since:{${subscriptionId}}`,
}

// Takes the due ids and pushes them a lease ahead in one step: no other instance takes them, and
// the claims of an instance that dies come back when the lease runs out.
const claimScript = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local leased = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], leased, id) end
return due
`

// Sets each (subscription, lot) side unless a later change set it already; answers the previous
// side of each ('' when there was none, '=' when a later change than this one is stored). The
// stored value is `${previousSide}|${side}|${change}`: the same change told again (a batch whose
// events failed to record after this step, run again) gets the same previous side back, so that
// its crossing is made on the second run; its side is the one seen this time.
const sidesScript = `
local function newer(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then return a ~= b end
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
local out = {}
for i = 1, #ARGV, 3 do
  local field, side, change = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local stored = redis.call('HGET', KEYS[1], field)
  if not stored then
    redis.call('HSET', KEYS[1], field, '|' .. side .. '|' .. change)
    table.insert(out, '')
  else
    local prevSide, oldSide, oldChange = string.match(stored, '^([^|]*)|([^|]*)|(.*)$')
    if not prevSide then
      -- Written before previous sides were kept: side|change, the previous side unknown.
      prevSide = '='
      oldSide, oldChange = string.match(stored, '^([^|]*)|(.*)$')
    end
    if oldChange == change then
      if prevSide ~= '=' then redis.call('HSET', KEYS[1], field, prevSide .. '|' .. side .. '|' .. change) end
      table.insert(out, prevSide)
    elseif newer(change, oldChange) then
      redis.call('HSET', KEYS[1], field, oldSide .. '|' .. side .. '|' .. change)
      table.insert(out, oldSide)
    else
      table.insert(out, '=')
    end
  end
end
return out
`

type Scripts = {
  webhookClaim(key: string, now: number, leaseMs: number, max: number): Promise<string[]>
  webhookSides(key: string, ...args: string[]): Promise<string[]>
}

export type DeliveryQueue = ReturnType<typeof createDeliveryQueue>

export function createDeliveryQueue(redis: RedisClient) {
  if (!('webhookClaim' in redis)) redis.defineCommand('webhookClaim', { numberOfKeys: 1, lua: claimScript })
  if (!('webhookSides' in redis)) redis.defineCommand('webhookSides', { numberOfKeys: 1, lua: sidesScript })
  const scripts = redis as unknown as Scripts

  return {
    /** Schedules deliveries not scheduled yet (one that is keeps its due time and lease). */
    async add(entries: readonly { id: string; dueAt: number }[]): Promise<void> {
      if (entries.length === 0) return
      await redis.zadd(KEYS.schedule, 'NX', ...entries.flatMap((e) => [e.dueAt, e.id]))
    },

    /** Schedules one delivery at that time, whether scheduled or not (a retry, a release). */
    async reschedule(id: string, dueAt: number): Promise<void> {
      await redis.zadd(KEYS.schedule, dueAt, id)
    },

    async remove(id: string): Promise<void> {
      await redis.zrem(KEYS.schedule, id)
    },

    /** Up to `max` due delivery ids, leased to the caller for `leaseMs`. */
    async claim(now: number, leaseMs: number, max: number): Promise<string[]> {
      return await scripts.webhookClaim(KEYS.schedule, now, leaseMs, max)
    },

    async depth(): Promise<number> {
      return await redis.zcard(KEYS.schedule)
    },

    async isSeeded(): Promise<boolean> {
      return (await redis.exists(KEYS.seeded)) === 1
    },

    async markSeeded(): Promise<void> {
      await redis.set(KEYS.seeded, new Date().toISOString())
    },

    /** Counts a failed attempt; answers the streak's length and when it began (ms). */
    async countFailure(subscriptionId: string, now: number): Promise<{ count: number; since: number }> {
      const [[, count], , [, since]] = (await redis
        .multi()
        .incr(KEYS.failures(subscriptionId))
        .set(KEYS.failingSince(subscriptionId), String(now), 'NX')
        .get(KEYS.failingSince(subscriptionId))
        .exec()) as [[unknown, number], unknown, [unknown, string | null]]
      return { count: Number(count), since: Number(since ?? now) }
    },

    /** A success (or an admin's enable) ends the streak of failures. */
    async resetFailures(subscriptionId: string): Promise<void> {
      await redis.del(KEYS.failures(subscriptionId), KEYS.failingSince(subscriptionId))
    },

    async failures(subscriptionId: string): Promise<number> {
      return Number((await redis.get(KEYS.failures(subscriptionId))) ?? 0)
    },

    /**
     * Records the side of each (subscription, lot) after a change; answers the previous sides
     * ('' unknown, '=' an older change than the stored one: ignore). The same change again
     * answers the same previous side (recording its crossing is idempotent by event id).
     */
    async swapSides(
      entries: readonly { subscriptionId: string; lotId: string; side: string; afterChange: string }[],
    ): Promise<string[]> {
      if (entries.length === 0) return []
      return await scripts.webhookSides(
        KEYS.sides,
        ...entries.flatMap((e) => [`${e.subscriptionId}|${e.lotId}`, e.side, e.afterChange]),
      )
    },

    /** Forgets a subscription's sides and streak (deleted, or its threshold changed). */
    async forget(subscriptionId: string, lotIds: readonly string[]): Promise<void> {
      const pipeline = redis.pipeline().del(KEYS.failures(subscriptionId), KEYS.failingSince(subscriptionId))
      if (lotIds.length > 0) pipeline.hdel(KEYS.sides, ...lotIds.map((lot) => `${subscriptionId}|${lot}`))
      await pipeline.exec()
    },
  }
}
