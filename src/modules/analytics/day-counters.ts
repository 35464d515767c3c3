import type { RedisClient } from '../../shared/redis.ts'
import type { AnalyticsRepository } from './analytics.repository.ts'
import { dayBounds, localDate } from './local-day.ts'

// A lot's counts of one local day (entries, exits, stays, money by method and currency) in a Redis
// hash, kept by event hooks. Each event counts once: one Lua step adds its id to the day's seen-set
// and increments only when it was new. The hash lives a few days; one that Redis lost (or never
// had, for a day before the hooks) is rebuilt from the day's facts through the same step, so an
// event told both by its hook and by a rebuild counts once.

const COUNT_SCRIPT = `
local fresh = redis.call('SADD', KEYS[1], ARGV[1])
if fresh == 1 then
  for i = 3, #ARGV, 2 do redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1]) end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return fresh
`

const TTL_SECONDS = 4 * 24 * 3600
/** Set on the hash once the day was rebuilt from its facts: its counts are whole. */
const BUILT = '_built'

export type DayCounts = {
  date: string
  entries: number
  exits: number
  stays: number
  stay_minutes: number
  /** By `<currency>:<method>`: money taken, refunded, and the number of payments. */
  money: Map<string, { currency: string; method: string; amount: number; refunded: number; payments: number }>
}

type Runner = { analyticsCount(...args: (string | number)[]): Promise<number> }

export type DayEvent =
  | { kind: 'entry'; sessionId: string; at: Date }
  | { kind: 'exit'; sessionId: string; entryAt: Date; at: Date }
  | { kind: 'payment'; paymentId: string; method: string; currency: string; amount: number; at: Date }
  | { kind: 'refund'; refundId: string; method: string; currency: string; amount: number; at: Date }

function fieldsOf(event: DayEvent): { id: string; fields: (string | number)[] } {
  switch (event.kind) {
    case 'entry':
      return { id: `entry:${event.sessionId}`, fields: ['entries', 1] }
    case 'exit':
      return {
        id: `exit:${event.sessionId}`,
        fields: [
          'exits',
          1,
          'stays',
          1,
          'stay_minutes',
          Math.max(0, Math.round((event.at.getTime() - event.entryAt.getTime()) / 60_000)),
        ],
      }
    case 'payment':
      return {
        id: `payment:${event.paymentId}`,
        fields: [
          `amount:${event.currency}:${event.method}`,
          event.amount,
          `payments:${event.currency}:${event.method}`,
          1,
        ],
      }
    case 'refund':
      return {
        id: `refund:${event.refundId}`,
        fields: [`refunded:${event.currency}:${event.method}`, event.amount],
      }
  }
}

const money = (fact: { amount: number; currency: string; at: Date }) => ({
  amount: fact.amount,
  currency: fact.currency,
  at: fact.at,
})

/**
 * The day event of money told by payments, reservations (prepayments and their refunds) or
 * memberships (period fees): the latter two under their own method and an id of their source, the
 * same the rebuild counts their facts by.
 */
export function moneyEventOf(event: {
  kind: 'settled' | 'refunded'
  id: string
  source?: 'payment' | 'reservation' | 'membership' | undefined
  method: string
  currency: string
  amount: number
  at: Date
}): DayEvent {
  const foreign = event.source === 'reservation' || event.source === 'membership'
  const id = foreign ? `${event.source}:${event.id}` : event.id
  const method = foreign ? (event.source as string) : event.method
  const fact = { method, currency: event.currency, amount: event.amount, at: event.at }
  return event.kind === 'settled'
    ? { kind: 'payment', paymentId: id, ...fact }
    : { kind: 'refund', refundId: id, ...fact }
}

export function createDayCounters(deps: {
  redis: RedisClient
  repo: AnalyticsRepository
  timeZoneOf: (lotId: string) => Promise<string>
}) {
  const { redis, repo } = deps
  if (!('analyticsCount' in redis))
    redis.defineCommand('analyticsCount', { numberOfKeys: 2, lua: COUNT_SCRIPT })
  const run = redis as unknown as Runner
  const key = {
    counts: (lotId: string, date: string) => `ana:day:${lotId}:${date}`,
    seen: (lotId: string, date: string) => `ana:seen:${lotId}:${date}`,
  }

  async function apply(lotId: string, date: string, event: DayEvent): Promise<boolean> {
    const { id, fields } = fieldsOf(event)
    return (
      (await run.analyticsCount(
        key.seen(lotId, date),
        key.counts(lotId, date),
        id,
        TTL_SECONDS,
        ...fields,
      )) === 1
    )
  }

  /** Counts every fact of the day through the same step as the hooks; then marks the day whole. */
  async function rebuild(lotId: string, date: string, timeZone: string): Promise<void> {
    const { start, end } = dayBounds(date, timeZone)
    const [entered, exited, paid, refunded, prepaid, prepaidBack, fees] = await Promise.all([
      repo.sessionsEntered(lotId, start, end),
      repo.sessionsExited(lotId, start, end),
      repo.paymentsSettled(lotId, start, end),
      repo.refundsMade(lotId, start, end),
      repo.reservationPaymentsMade(lotId, start, end),
      repo.reservationRefundsMade(lotId, start, end),
      repo.membershipPaymentsMade(lotId, start, end),
    ])
    const events: DayEvent[] = [
      ...entered.map((s) => ({ kind: 'entry' as const, sessionId: String(s._id), at: s.entry_at as Date })),
      ...exited.map((s) => ({
        kind: 'exit' as const,
        sessionId: String(s._id),
        entryAt: s.entry_at as Date,
        at: s.exit_at as Date,
      })),
      ...paid.map((p) => ({
        kind: 'payment' as const,
        paymentId: String(p._id),
        method: String(p.method),
        currency: String(p.currency),
        amount: Number(p.amount),
        at: p.settled_at as Date,
      })),
      ...refunded.map((r) => ({
        kind: 'refund' as const,
        refundId: String(r._id),
        method: r.method,
        currency: String(r.currency),
        amount: Number(r.amount),
        at: r.created_at as Date,
      })),
      // Under the ids and the method the reservation and membership hooks count them by (moneyEventOf).
      ...prepaid.map((p) => ({
        kind: 'payment' as const,
        paymentId: `reservation:${p.id}`,
        ...money(p),
        method: 'reservation',
      })),
      ...prepaidBack.map((r) => ({
        kind: 'refund' as const,
        refundId: `reservation:${r.id}`,
        ...money(r),
        method: 'reservation',
      })),
      ...fees.map((p) => ({
        kind: 'payment' as const,
        paymentId: `membership:${p.id}`,
        ...money(p),
        method: 'membership',
      })),
    ]
    for (let i = 0; i < events.length; i += 200)
      await Promise.all(events.slice(i, i + 200).map((event) => apply(lotId, date, event)))
    await redis
      .multi()
      .hset(key.counts(lotId, date), BUILT, '1')
      .expire(key.counts(lotId, date), TTL_SECONDS)
      .exec()
  }

  return {
    /** Counts an event in its lot's local day (of `event.at`); idempotent per event. */
    async count(lotId: string, event: DayEvent): Promise<void> {
      const date = localDate(event.at, await deps.timeZoneOf(lotId))
      await apply(lotId, date, event)
    },

    /** A lot's counts of a local day, rebuilt from the facts first when Redis does not have them whole. */
    async read(lotId: string, date: string, timeZone: string): Promise<DayCounts> {
      let raw = await redis.hgetall(key.counts(lotId, date))
      if (raw[BUILT] !== '1') {
        await rebuild(lotId, date, timeZone)
        raw = await redis.hgetall(key.counts(lotId, date))
      }
      const money: DayCounts['money'] = new Map()
      for (const [field, value] of Object.entries(raw)) {
        const [what, currency, method] = field.split(':')
        if (!currency || !method || (what !== 'amount' && what !== 'refunded' && what !== 'payments'))
          continue
        const line = money.get(`${currency}:${method}`) ?? {
          currency,
          method,
          amount: 0,
          refunded: 0,
          payments: 0,
        }
        line[what] += Number(value)
        money.set(`${currency}:${method}`, line)
      }
      return {
        date,
        entries: Number(raw.entries ?? 0),
        exits: Number(raw.exits ?? 0),
        stays: Number(raw.stays ?? 0),
        stay_minutes: Number(raw.stay_minutes ?? 0),
        money,
      }
    },

    /**
     * Counts the day's facts again through the seen-set step (those counted already stay counted
     * once): the rollup job does so before it saves a day, so a fact whose hook failed still counts.
     */
    async recount(lotId: string, date: string, timeZone: string): Promise<void> {
      await rebuild(lotId, date, timeZone)
    },

    /** Forgets a day (tests: Redis "lost" it). */
    async forget(lotId: string, date: string): Promise<void> {
      await redis.del(key.counts(lotId, date), key.seen(lotId, date))
    },
  }
}

export type DayCounters = ReturnType<typeof createDayCounters>
