import type { Band, RateType } from '../../../workers/fee.ts'
import { AppError } from '../../shared/errors.ts'
import { keyedCreate } from '../../shared/idempotency.ts'
import { decodeCursor, pageOf } from '../../shared/ids.ts'
import type { WorkerPool } from '../../shared/worker-pool.ts'
import type { FeeQuote, FeeRequest, PricingPort, TariffSnapshot } from '../sessions/operations.contract.ts'
import type { RateRecord } from './pricing.model.ts'
import { createFeePool } from './pricing.pool.ts'
import { MAX_PLANS_PER_LOT, type PricingRepository } from './pricing.repository.ts'

export type RateInput = {
  name: string
  lot_id: string
  zone_id: string | null
  vehicle_type: string | null
  currency?: string | undefined
  rate_type: RateType
  amount: number
  step_minutes: number
  grace_period_minutes: number
  daily_max: number | null
  lost_ticket_fee: number
  bands: Band[]
  effective_from?: string | undefined
  effective_to: string | null
  is_active: boolean
}

export type RateView = Omit<
  RateRecord,
  '_id' | 'effective_from' | 'effective_to' | 'created_at' | 'updated_at'
> & {
  id: string
  effective_from: string
  effective_to: string | null
  created_at: string
  updated_at: string
}

export type QuoteInput = {
  lot_id: string
  zone_id?: string | undefined
  vehicle_type: string
  entry_time: string
  exit_time: string
  lost_ticket: boolean
}

/** What pricing needs of the facilities capability; both throw NOT_FOUND AppErrors. */
export type PricingFacilities = {
  getLot(id: string): Promise<{ id: string; currency: string; time_zone: string }>
  getZone(id: string): Promise<{ id: string; lot_id: string }>
}

export type PricingService = ReturnType<typeof createPricingService>

type Page = { limit: number; cursor?: string | undefined }
type Creator = { callerId: string; idempotencyKey?: string | undefined }

const DAY_MS = 86_400_000
/** A quote prices at most this long a stay. */
export const MAX_QUOTE_DAYS = 31

export function toRateView(rate: RateRecord): RateView {
  return {
    id: rate._id,
    name: rate.name,
    lot_id: rate.lot_id,
    zone_id: rate.zone_id,
    vehicle_type: rate.vehicle_type,
    currency: rate.currency,
    rate_type: rate.rate_type,
    amount: rate.amount,
    step_minutes: rate.step_minutes,
    grace_period_minutes: rate.grace_period_minutes,
    daily_max: rate.daily_max,
    lost_ticket_fee: rate.lost_ticket_fee,
    bands: rate.bands,
    effective_from: rate.effective_from.toISOString(),
    effective_to: rate.effective_to?.toISOString() ?? null,
    is_active: rate.is_active,
    created_at: rate.created_at.toISOString(),
    updated_at: rate.updated_at.toISOString(),
  }
}

/** The plan as the fee function reads it; stored on a session at entry. Plain JSON. */
export function toSnapshot(rate: RateRecord): TariffSnapshot {
  return {
    id: rate._id,
    name: rate.name,
    lot_id: rate.lot_id,
    zone_id: rate.zone_id,
    vehicle_type: rate.vehicle_type,
    currency: rate.currency,
    rate_type: rate.rate_type,
    amount: rate.amount,
    step_minutes: rate.step_minutes,
    grace_period_minutes: rate.grace_period_minutes,
    daily_max: rate.daily_max,
    lost_ticket_fee: rate.lost_ticket_fee,
    bands: rate.bands.map((band) => ({ ...band, days: [...band.days] })),
    effective_from: rate.effective_from.toISOString(),
    effective_to: rate.effective_to?.toISOString() ?? null,
  }
}

export type TariffCandidate = Pick<
  RateRecord,
  '_id' | 'zone_id' | 'vehicle_type' | 'effective_from' | 'effective_to' | 'is_active'
>

/**
 * The plan in force at `at` for a stay in this zone with this vehicle type. Priority: vehicle type
 * and zone, then vehicle type, then zone, then generic; within one level the latest
 * effective_from wins, and on a tie the plan created last (ids sort by creation time).
 */
export function pickTariff<T extends TariffCandidate>(
  candidates: readonly T[],
  query: { zoneId: string | null; vehicleType: string; at: Date },
): T | null {
  const at = query.at.getTime()
  let best: { plan: T; level: number } | null = null
  for (const plan of candidates) {
    if (!plan.is_active) continue
    if (plan.effective_from.getTime() > at) continue
    if (plan.effective_to !== null && plan.effective_to.getTime() <= at) continue
    if (plan.zone_id !== null && plan.zone_id !== query.zoneId) continue
    if (plan.vehicle_type !== null && plan.vehicle_type !== query.vehicleType) continue
    const level = (plan.vehicle_type !== null ? 2 : 0) + (plan.zone_id !== null ? 1 : 0)
    if (
      best === null ||
      level > best.level ||
      (level === best.level &&
        (plan.effective_from > best.plan.effective_from ||
          (plan.effective_from.getTime() === best.plan.effective_from.getTime() && plan._id > best.plan._id)))
    ) {
      best = { plan, level }
    }
  }
  return best?.plan ?? null
}

function fieldProblem(field: string, reason: string): AppError {
  return new AppError('VALIDATION_FAILED', `${field} ${reason}`, {
    errors: [{ in: 'body', field, pointer: `/${field}`, reason }],
  })
}

const noRate = (id: string) => new AppError('NOT_FOUND', `No rate ${id}`)

export function createPricingService(deps: {
  repo: PricingRepository
  facilities: PricingFacilities
  pool: Pick<WorkerPool, 'run'>
}) {
  const { repo, facilities } = deps
  const fees = createFeePool(deps.pool)

  /** The stored fields of an input, after the checks that need the lot and the zone. */
  async function planFields(input: RateInput, current?: RateRecord) {
    const lot = await facilities.getLot(input.lot_id)
    if (input.zone_id !== null) {
      const zone = await facilities.getZone(input.zone_id)
      if (zone.lot_id !== lot.id) throw fieldProblem('zone_id', 'must be a zone of the lot lot_id')
    }
    const currency = input.currency ?? lot.currency
    if (currency !== lot.currency) {
      throw fieldProblem('currency', `must be the lot's currency, ${lot.currency}`)
    }
    const effectiveFrom =
      input.effective_from !== undefined
        ? new Date(input.effective_from)
        : (current?.effective_from ?? new Date())
    const effectiveTo = input.effective_to === null ? null : new Date(input.effective_to)
    if (effectiveTo !== null && effectiveTo <= effectiveFrom) {
      throw fieldProblem('effective_to', 'must be after effective_from')
    }
    return {
      name: input.name.trim(),
      lot_id: lot.id,
      zone_id: input.zone_id,
      vehicle_type: input.vehicle_type,
      currency,
      rate_type: input.rate_type,
      amount: input.amount,
      step_minutes: input.step_minutes,
      grace_period_minutes: input.grace_period_minutes,
      daily_max: input.daily_max,
      lost_ticket_fee: input.lost_ticket_fee,
      bands: input.bands.map((band) => ({ ...band, name: band.name.trim() })),
      effective_from: effectiveFrom,
      effective_to: effectiveTo,
      is_active: input.is_active,
    }
  }

  async function requireRate(id: string): Promise<RateRecord> {
    const rate = await repo.findRate(id)
    if (!rate) throw noRate(id)
    return rate
  }

  async function roomInLot(lotId: string): Promise<void> {
    if ((await repo.countActiveRatesOfLot(lotId)) >= MAX_PLANS_PER_LOT) {
      throw new AppError(
        'UNPROCESSABLE',
        `A lot holds at most ${MAX_PLANS_PER_LOT} active rate plans; deactivate some first`,
      )
    }
  }

  const pricing = {
    async tariffFor(query: {
      lotId: string
      zoneId: string | null
      vehicleType: string
      at: Date
    }): Promise<TariffSnapshot | null> {
      const plan = pickTariff(await repo.activeRatesOfLot(query.lotId), query)
      return plan === null ? null : toSnapshot(plan)
    },

    quote: (request: FeeRequest): Promise<FeeQuote> => fees.quote(request),

    quoteMany: (requests: readonly FeeRequest[]): Promise<FeeQuote[]> => fees.quoteMany(requests),
  } satisfies PricingPort

  return {
    ...pricing,

    async list(query: Page & { lot_id?: string | undefined; active?: 'true' | 'false' | undefined }) {
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
      const rows = await repo.listRates({
        ...(query.lot_id !== undefined ? { lot_id: query.lot_id } : {}),
        ...(query.active !== undefined ? { active: query.active === 'true' } : {}),
        ...(after ? { after } : {}),
        limit: query.limit + 1,
      })
      return pageOf(rows, query.limit, toRateView)
    },

    async create(input: RateInput, creator: Creator): Promise<RateView> {
      return await keyedCreate(
        repo.idempotency,
        { kind: 'rate', callerId: creator.callerId, key: creator.idempotencyKey },
        input,
        async (id) => {
          const existing = await repo.findRate(id)
          if (existing) return toRateView(existing)
          const fields = await planFields(input)
          if (fields.is_active) await roomInLot(fields.lot_id)
          const now = new Date()
          const rate: RateRecord = { _id: id, ...fields, created_at: now, updated_at: now }
          await repo.insertRate(rate)
          return toRateView(rate)
        },
        async (id) => {
          const rate = await repo.findRate(id)
          return rate ? toRateView(rate) : undefined
        },
      )
    },

    async get(id: string): Promise<RateView> {
      return toRateView(await requireRate(id))
    },

    /**
     * A full replacement. Stays that entered before keep the snapshot taken at their entry; a
     * replacement prices the stays that enter after it.
     */
    async replace(id: string, input: RateInput): Promise<RateView> {
      const current = await requireRate(id)
      const fields = await planFields(input, current)
      if (fields.is_active && (!current.is_active || current.lot_id !== fields.lot_id)) {
        await roomInLot(fields.lot_id)
      }
      const updated = await repo.updateRate(id, fields)
      if (!updated) throw noRate(id)
      return toRateView(updated)
    },

    /** Deactivates: the plan stays readable (sessions' snapshots name it) and is never picked again. */
    async deactivate(id: string): Promise<void> {
      await requireRate(id)
      await repo.deactivateRate(id)
    },

    /** What a stay would cost: the plan in force at entry_time, priced in the pool. */
    async quoteStay(input: QuoteInput): Promise<FeeQuote> {
      const lot = await facilities.getLot(input.lot_id)
      let zoneId: string | null = null
      if (input.zone_id !== undefined) {
        const zone = await facilities.getZone(input.zone_id)
        if (zone.lot_id !== lot.id) throw fieldProblem('zone_id', 'must be a zone of the lot lot_id')
        zoneId = zone.id
      }
      const entryAt = new Date(input.entry_time)
      const exitAt = new Date(input.exit_time)
      if (exitAt <= entryAt) throw fieldProblem('exit_time', 'must be after entry_time')
      if (exitAt.getTime() - entryAt.getTime() > MAX_QUOTE_DAYS * DAY_MS) {
        throw fieldProblem('exit_time', `must be at most ${MAX_QUOTE_DAYS} days after entry_time`)
      }
      const tariff = await pricing.tariffFor({
        lotId: lot.id,
        zoneId,
        vehicleType: input.vehicle_type,
        at: entryAt,
      })
      return await fees.quote({
        tariff,
        currency: lot.currency,
        timeZone: lot.time_zone,
        entryAt,
        exitAt,
        lostTicket: input.lost_ticket,
        adjustments: [],
      })
    },
  }
}
