import { readFileSync } from 'node:fs'
import type { RedisClient } from '../../shared/redis.ts'

const script = readFileSync(new URL('./discounts.lua', import.meta.url), 'utf8')

type ScriptRunner = { discountUses(...args: (string | number)[]): Promise<number> }

export type TakeResult =
  | { taken: true; total: number }
  | { taken: false; why: 'missing' | 'limit' | 'user_limit' }

export type DiscountCounters = ReturnType<typeof createDiscountCounters>

/**
 * The uses of each code live in Redis, where one script checks both limits and counts in one step
 * (on FerretDB no read-modify-write of a document is safe). The client's key prefix applies to
 * both keys; the code in braces keeps them in one cluster slot.
 */
export function createDiscountCounters(redis: RedisClient) {
  if (!('discountUses' in redis)) redis.defineCommand('discountUses', { numberOfKeys: 2, lua: script })
  const run = (code: string, ...args: (string | number)[]) =>
    (redis as unknown as ScriptRunner).discountUses(...keysOf(code), ...args)

  return {
    async take(
      code: string,
      limits: { maxUses: number | null; maxPerUser: number | null; userId: string | null },
    ) {
      const result = Number(
        await run(code, 'take', limits.maxUses ?? 0, limits.maxPerUser ?? 0, limits.userId ?? ''),
      )
      if (result === -1) return { taken: false, why: 'missing' } as TakeResult
      if (result === -2) return { taken: false, why: 'limit' } as TakeResult
      if (result === -3) return { taken: false, why: 'user_limit' } as TakeResult
      return { taken: true, total: result } as TakeResult
    },

    async giveBack(code: string, userId: string | null): Promise<void> {
      await run(code, 'give', userId ?? '')
    },

    /** Sets the counters from a count of the facts unless they exist (another instance was first). */
    async seed(code: string, total: number, perUser: readonly { user_id: string; uses: number }[]) {
      return (await run(code, 'seed', total, ...perUser.flatMap((u) => [u.user_id, u.uses]))) === 1
    },

    /** null when Redis has no counters of the code. */
    async uses(code: string): Promise<number | null> {
      const value = await redis.get(keysOf(code)[0])
      return value === null ? null : Number(value)
    },

    async usesOf(codes: readonly string[]): Promise<(number | null)[]> {
      if (codes.length === 0) return []
      const values = await redis.mget(...codes.map((code) => keysOf(code)[0]))
      return values.map((value) => (value === null ? null : Number(value)))
    },

    async userUses(code: string, userId: string): Promise<number> {
      return Number((await redis.hget(keysOf(code)[1], userId)) ?? 0)
    },

    /** Drops a code's counters, as a Redis restart without data would. */
    async forget(code: string): Promise<void> {
      await redis.del(...keysOf(code))
    },
  }
}

export function keysOf(code: string): [string, string] {
  return [`disc:{${code}}:uses`, `disc:{${code}}:users`]
}
