import { AppError } from '../../shared/errors.ts'
import { decodeCursor, pageOf } from '../../shared/ids.ts'
import type { RedisClient } from '../../shared/redis.ts'
import type { Role } from '../accounts/accounts.model.ts'
import type {
  Adjustment,
  DiscountsPort,
  SessionFacts,
  SessionsPort,
} from '../sessions/operations.contract.ts'
import { createDiscountCounters } from './discounts.counters.ts'
import type { DiscountRecord, RedemptionRecord, ValidationRecord } from './discounts.model.ts'
import type { DiscountsRepository } from './discounts.repository.ts'
import type { DiscountInput, InvalidReason, ValidationInput } from './discounts.schemas.ts'

export type DiscountView = {
  id: string
  code: string
  name: string
  discount_type: DiscountRecord['discount_type']
  value: number
  currency: string | null
  valid_from: string
  valid_to: string | null
  max_uses: number | null
  max_uses_per_user: number | null
  lot_id: string | null
  is_active: boolean
  times_used: number
  created_at: string
  updated_at: string
}

export type ValidationView = Omit<ValidationRecord, '_id' | 'merchant_key' | 'created_at'> & {
  id: string
  created_at: string
}

export type CheckResult = {
  valid: boolean
  reason: InvalidReason | null
  discount: DiscountView | null
  uses_remaining: number | null
}

/** Who asks: customers reach their own sessions only; staff reach any. */
export type Viewer = { userId: string; role: Role }

type Page = { limit: number; cursor?: string | undefined }

export type DiscountsService = ReturnType<typeof createDiscountsService>

/** "summer20" and "SUMMER20" are one code. */
export const normalizeCode = (code: string): string => code.trim().toUpperCase()

/** "  The  Cinema " and "the cinema" are one merchant. */
export const merchantKey = (merchant: string): string => merchant.trim().replace(/\s+/g, ' ').toLowerCase()

/** Minor units as a price: 1500 USD -> "$15.00", 1500 JPY -> "¥1,500". */
export function formatMoney(minor: number, currency: string): string {
  const format = new Intl.NumberFormat('en', { style: 'currency', currency })
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2
  return format.format(minor / 10 ** digits)
}

/** 120 -> "2 h", 90 -> "1 h 30 min", 45 -> "45 min". */
export function formatMinutes(minutes: number): string {
  const hours = Math.floor(minutes / 60)
  const rest = Math.round(minutes - hours * 60)
  if (hours === 0) return `${rest} min`
  return rest === 0 ? `${hours} h` : `${hours} h ${rest} min`
}

/** What a discount grants a session, fixed at redemption. */
export function adjustmentOf(discount: DiscountRecord): Pick<RedemptionRecord, 'kind' | 'value' | 'label'> {
  const code = discount._id
  switch (discount.discount_type) {
    case 'percentage':
      return { kind: 'percentage', value: discount.value, label: `Discount ${code} (${discount.value}%)` }
    case 'fixed_amount':
      return {
        kind: 'fixed',
        value: discount.value,
        label: `Discount ${code} (${formatMoney(discount.value, discount.currency ?? 'USD')} off)`,
      }
    case 'free_hours':
      return {
        kind: 'free_minutes',
        value: Math.round(discount.value * 60),
        label: `Discount ${code} (${formatMinutes(discount.value * 60)} free)`,
      }
  }
}

function validationLabel(merchant: string, input: ValidationInput, currency: string): string {
  switch (input.kind) {
    case 'full':
      return `Validated by ${merchant} (parking covered)`
    case 'free_minutes':
      return `Validated by ${merchant} (${formatMinutes(input.value)} free)`
    case 'fixed':
      return `Validated by ${merchant} (${formatMoney(input.value, currency)} off)`
    case 'percentage':
      return `Validated by ${merchant} (${input.value}% off)`
  }
}

const redemptionAdjustment = (r: RedemptionRecord): Adjustment => ({
  kind: r.kind,
  value: r.value,
  source: 'discount',
  ref: r.code,
  label: r.label,
})

const validationAdjustment = (v: ValidationRecord): Adjustment => ({
  kind: v.kind,
  value: v.value ?? 0,
  source: 'validation',
  ref: v._id,
  label: v.label,
})

function toDiscountView(discount: DiscountRecord, timesUsed: number): DiscountView {
  return {
    id: discount._id,
    code: discount._id,
    name: discount.name,
    discount_type: discount.discount_type,
    value: discount.value,
    currency: discount.currency,
    valid_from: discount.valid_from.toISOString(),
    valid_to: discount.valid_to?.toISOString() ?? null,
    max_uses: discount.max_uses,
    max_uses_per_user: discount.max_uses_per_user,
    lot_id: discount.lot_id,
    is_active: discount.is_active,
    times_used: timesUsed,
    created_at: discount.created_at.toISOString(),
    updated_at: discount.updated_at.toISOString(),
  }
}

function toValidationView(v: ValidationRecord): ValidationView {
  return {
    id: v._id,
    session_id: v.session_id,
    merchant: v.merchant,
    kind: v.kind,
    value: v.value,
    currency: v.currency,
    reference: v.reference,
    label: v.label,
    created_by: v.created_by,
    created_at: v.created_at.toISOString(),
  }
}

const refusals: Record<Exclude<InvalidReason, 'unknown'>, string> = {
  expired: 'The discount code has expired',
  not_yet_valid: 'The discount code is not valid yet',
  limit_reached: 'The discount code has reached its maximum number of uses',
  inactive: 'The discount code is not active',
  wrong_lot: 'The discount code is not valid at this facility',
  wrong_currency: "The discount code's amount is in another currency than the session's",
  already_used_by_you: 'The discount code has been used as often as one customer may use it',
}

const refuse = (reason: Exclude<InvalidReason, 'unknown'>) =>
  new AppError('UNPROCESSABLE', refusals[reason], { extensions: { reason } })

const unknownCode = (code: string) => new AppError('NOT_FOUND', `No discount code ${code}`)

/** The fields an admin sets, on create and on replace alike. */
function editableFields(input: DiscountInput, now: Date) {
  const validFrom = input.valid_from ? new Date(input.valid_from) : now
  const validTo = input.valid_to ? new Date(input.valid_to) : null
  if (validTo && validTo <= validFrom) {
    const reason = 'must be after valid_from'
    throw new AppError('VALIDATION_FAILED', `valid_to ${reason}`, {
      errors: [{ in: 'body', field: 'valid_to', pointer: '/valid_to', reason }],
    })
  }
  return {
    name: input.name.trim(),
    discount_type: input.discount_type,
    value: input.value,
    currency: input.discount_type === 'fixed_amount' ? input.currency : null,
    valid_from: validFrom,
    valid_to: validTo,
    max_uses: input.max_uses ?? null,
    max_uses_per_user: input.max_uses_per_user ?? null,
    lot_id: input.lot_id ?? null,
    is_active: input.is_active,
  }
}

export function createDiscountsService(deps: {
  repo: DiscountsRepository
  redis: RedisClient
  sessions: SessionsPort
  /** Whether a lot exists; a discount bound to an unknown lot is refused with 404. */
  lotExists?: (lotId: string) => Promise<boolean>
  now?: () => Date
}) {
  const { repo, sessions } = deps
  const counters = createDiscountCounters(deps.redis)
  const now = deps.now ?? (() => new Date())

  /**
   * Redis lost the code's counters (a restart without data): count the facts and set them, unless
   * another instance did first. Uses are only taken while counters exist, so no new fact appears
   * while they are missing; a redemption whose use was taken just before the loss and recorded
   * just after is the one uncounted case.
   */
  async function rebuild(code: string): Promise<void> {
    const rows = await repo.usesByUser(code)
    const total = rows.reduce((sum, row) => sum + row.uses, 0)
    const perUser = rows.flatMap((row) =>
      row.user_id === null ? [] : [{ user_id: row.user_id, uses: row.uses }],
    )
    await counters.seed(code, total, perUser)
  }

  async function usesOf(code: string): Promise<number> {
    const uses = await counters.uses(code)
    if (uses !== null) return uses
    await rebuild(code)
    return (await counters.uses(code)) ?? 0
  }

  async function view(discount: DiscountRecord): Promise<DiscountView> {
    return toDiscountView(discount, await usesOf(discount._id))
  }

  async function requireLot(lotId: string | undefined): Promise<void> {
    if (lotId && deps.lotExists && !(await deps.lotExists(lotId))) {
      throw new AppError('NOT_FOUND', `No lot ${lotId}`)
    }
  }

  /** Why a code cannot be used now at this lot (or anywhere, without one), before counting. */
  function stateRefusal(discount: DiscountRecord, at: Date, lotId: string | null) {
    if (!discount.is_active) return 'inactive' as const
    if (at < discount.valid_from) return 'not_yet_valid' as const
    if (discount.valid_to && at > discount.valid_to) return 'expired' as const
    if (discount.lot_id && lotId && discount.lot_id !== lotId) return 'wrong_lot' as const
    return null
  }

  /** A customer reaches their own sessions only; another's is "not found". */
  async function sessionFor(viewer: Viewer | null, sessionId: string): Promise<SessionFacts> {
    const facts = await sessions.facts(sessionId)
    if (viewer && viewer.role === 'customer' && facts.user_id !== viewer.userId) {
      throw new AppError('NOT_FOUND', `No session ${sessionId}`)
    }
    return facts
  }

  function requireActive(facts: SessionFacts): void {
    if (facts.status !== 'active') throw new AppError('CONFLICT', `The session ${facts.id} is closed`)
  }

  type RedeemInput = {
    code: string
    sessionId: string
    lotId: string
    userId: string | null
    currency?: string
  }

  // Calls for one code and one session share one attempt in this process: otherwise a call that
  // finds the code at its limit could not see that the use was taken by its twin, still in flight,
  // and would refuse what the twin grants. (Twins in two instances at the same millisecond remain.)
  const inFlight = new Map<string, Promise<RedemptionRecord>>()

  /** The redemption, and the session's index of its adjustments names it. */
  async function redeem(input: RedeemInput): Promise<Adjustment> {
    const key = `${normalizeCode(input.code)}:${input.sessionId}`
    let attempt = inFlight.get(key)
    if (!attempt) {
      attempt = (async () => {
        const redemption = await redeemOnce(input)
        await repo.indexAdjustment(redemption.session_id, 'redemption', redemption._id)
        return redemption
      })().finally(() => inFlight.delete(key))
      inFlight.set(key, attempt)
    }
    return redemptionAdjustment(await attempt)
  }

  async function redeemOnce(input: RedeemInput): Promise<RedemptionRecord> {
    const code = normalizeCode(input.code)
    const discount = await repo.findDiscount(code)
    if (!discount) throw unknownCode(code)
    const id = `${code}:${input.sessionId}`
    // Once redeemed for a session, a code stays granted to it: the same adjustment again.
    const earlier = await repo.findRedemption(id)
    if (earlier) return earlier

    const refusal = stateRefusal(discount, now(), input.lotId)
    if (refusal) throw refuse(refusal)
    if (discount.discount_type === 'fixed_amount') {
      const currency = input.currency ?? (await sessions.facts(input.sessionId)).currency
      if (currency !== discount.currency) throw refuse('wrong_currency')
    }

    const limits = {
      maxUses: discount.max_uses,
      maxPerUser: discount.max_uses_per_user,
      userId: input.userId,
    }
    let taken = await counters.take(code, limits)
    if (!taken.taken && taken.why === 'missing') {
      await rebuild(code)
      taken = await counters.take(code, limits)
    }
    if (!taken.taken) {
      if (taken.why === 'missing') {
        throw new AppError(
          'DEPENDENCY_UNAVAILABLE',
          'The discount counters could not be rebuilt; retry shortly',
        )
      }
      // A concurrent redemption of this code for this session may hold the last use: it is ours too.
      const raced = await repo.findRedemption(id)
      if (raced) return raced
      throw refuse(taken.why === 'limit' ? 'limit_reached' : 'already_used_by_you')
    }

    const redemption: RedemptionRecord = {
      _id: id,
      code,
      session_id: input.sessionId,
      user_id: input.userId,
      lot_id: input.lotId,
      ...adjustmentOf(discount),
      created_at: now(),
    }
    let inserted: boolean
    try {
      inserted = await repo.insertRedemption(redemption)
    } catch (error) {
      await counters.giveBack(code, input.userId)
      throw error
    }
    if (inserted) return redemption
    // A concurrent call for the same session recorded it first: its use counts, ours goes back.
    await counters.giveBack(code, input.userId)
    const winner = await repo.findRedemption(id)
    if (!winner) throw new Error(`redemption ${id} lost its insert but cannot be read`)
    return winner
  }

  const port: DiscountsPort = {
    redeem: (input) => redeem(input),
    async adjustmentsOf(sessionId: string): Promise<Adjustment[]> {
      const { redemptions, validations } = await repo.adjustmentsOf(sessionId)
      return [...redemptions.map(redemptionAdjustment), ...validations.map(validationAdjustment)]
    },
  }

  return {
    ...port,

    async list(query: Page & { active?: 'true' | 'false' | undefined }) {
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
      const rows = await repo.listDiscounts({
        ...(after ? { after } : {}),
        ...(query.active ? { active: query.active === 'true' } : {}),
        limit: query.limit + 1,
      })
      const page = rows.slice(0, query.limit)
      const uses = await counters.usesOf(page.map((row) => row._id))
      const counted = await Promise.all(page.map(async (row, i) => uses[i] ?? (await usesOf(row._id))))
      const byCode = new Map(page.map((row, i) => [row._id, counted[i] ?? 0]))
      return pageOf(rows, query.limit, (row) => toDiscountView(row, byCode.get(row._id) ?? 0))
    },

    async get(id: string): Promise<DiscountView> {
      const discount = await repo.findDiscount(normalizeCode(id))
      if (!discount) throw unknownCode(normalizeCode(id))
      return await view(discount)
    },

    async create(input: DiscountInput & { code: string }): Promise<DiscountView> {
      const at = now()
      const discount: DiscountRecord = {
        _id: normalizeCode(input.code),
        ...editableFields(input, at),
        created_at: at,
        updated_at: at,
      }
      await requireLot(input.lot_id)
      if (!(await repo.insertDiscount(discount))) {
        throw new AppError('CONFLICT', `A discount code ${discount._id} exists already`)
      }
      return await view(discount)
    },

    /** A full replacement of the editable fields; uses counted so far stay. */
    async replace(id: string, input: DiscountInput): Promise<DiscountView> {
      const code = normalizeCode(id)
      const fields = editableFields(input, now())
      if (!(await repo.findDiscount(code))) throw unknownCode(code)
      await requireLot(input.lot_id)
      const updated = await repo.updateDiscount(code, fields)
      if (!updated) throw unknownCode(code)
      return await view(updated)
    },

    /** Deactivates: redemptions refer to the code, so it is never deleted. */
    async deactivate(id: string): Promise<void> {
      const code = normalizeCode(id)
      if (!(await repo.findDiscount(code))) throw unknownCode(code)
      await repo.updateDiscount(code, { is_active: false })
    },

    /** Whether a code could be redeemed now, and why not; counts nothing. */
    async check(input: { code: string; session_id?: string | undefined; lot_id?: string | undefined }) {
      const code = normalizeCode(input.code)
      const discount = await repo.findDiscount(code)
      if (!discount) {
        return { valid: false, reason: 'unknown', discount: null, uses_remaining: null } as CheckResult
      }
      const facts = input.session_id ? await sessions.facts(input.session_id) : undefined
      const shown = await view(discount)
      const remaining = discount.max_uses === null ? null : Math.max(0, discount.max_uses - shown.times_used)
      const answer = (reason: InvalidReason | null): CheckResult => ({
        valid: reason === null,
        reason,
        discount: shown,
        uses_remaining: remaining,
      })
      if (facts && (await repo.findRedemption(`${code}:${facts.id}`))) return answer(null)

      const refusal = stateRefusal(discount, now(), facts?.lot_id ?? input.lot_id ?? null)
      if (refusal) return answer(refusal)
      if (facts && discount.discount_type === 'fixed_amount' && facts.currency !== discount.currency) {
        return answer('wrong_currency')
      }
      if (remaining === 0) return answer('limit_reached')
      if (facts?.user_id && discount.max_uses_per_user !== null) {
        const mine = await counters.userUses(code, facts.user_id)
        if (mine >= discount.max_uses_per_user) return answer('already_used_by_you')
      }
      return answer(null)
    },

    /** POST /sessions/{id}/discount: the session's customer, or staff. */
    async redeemForSession(viewer: Viewer, sessionId: string, code: string): Promise<Adjustment> {
      const facts = await sessionFor(viewer, sessionId)
      requireActive(facts)
      return await redeem({
        code,
        sessionId: facts.id,
        lotId: facts.lot_id,
        userId: facts.user_id,
        currency: facts.currency,
      })
    },

    /**
     * Records a merchant's validation once per merchant per session. The same body again answers
     * the record (created: false); another body from that merchant is a 409.
     */
    async validate(
      viewer: Viewer,
      sessionId: string,
      input: ValidationInput,
    ): Promise<{ validation: ValidationView; created: boolean }> {
      const facts = await sessionFor(viewer, sessionId)
      const merchant = input.merchant.trim().replace(/\s+/g, ' ')
      const key = merchantKey(merchant)
      const id = `${facts.id}:${key}`
      const value = input.kind === 'full' ? null : input.value
      const reference = input.reference?.trim() || null
      const same = (v: ValidationRecord) =>
        v.kind === input.kind && v.value === value && v.reference === reference

      const earlier = await repo.findValidation(id)
      if (!earlier) requireActive(facts)
      const record: ValidationRecord = {
        _id: id,
        session_id: facts.id,
        merchant,
        merchant_key: key,
        kind: input.kind,
        value,
        currency: input.kind === 'fixed' ? facts.currency : null,
        reference,
        label: validationLabel(merchant, input, facts.currency),
        created_by: viewer.userId,
        created_at: now(),
      }
      const existing =
        earlier ?? ((await repo.insertValidation(record)) ? undefined : await repo.findValidation(id))
      await repo.indexAdjustment(facts.id, 'validation', id)
      if (!existing) return { validation: toValidationView(record), created: true }
      if (!same(existing)) {
        throw new AppError('CONFLICT', `${existing.merchant} has validated this session already, differently`)
      }
      return { validation: toValidationView(existing), created: false }
    },

    async validationsOf(viewer: Viewer, sessionId: string, query: Page) {
      const facts = await sessionFor(viewer, sessionId)
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
      const rows = await repo.validationsOf(facts.id, { ...(after ? { after } : {}), limit: query.limit + 1 })
      return pageOf(rows, query.limit, toValidationView)
    },
  }
}
