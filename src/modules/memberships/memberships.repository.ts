import type { QueryFilter } from 'mongoose'
import { createIdempotencyStore } from '../../shared/idempotency.ts'
import { type Database, insertOnce, readNumbered, trusted } from '../../shared/mongo.ts'
import {
  type CancellationRecord,
  type ClaimRecord,
  type IntentRecord,
  type MembershipRecord,
  type MembershipStatus,
  membershipModels,
  type PeriodRecord,
  type PeriodState,
  type PeriodStateRecord,
  type PlanRecord,
  type SlotRecord,
  type UsageIndexRecord,
  type UsageRecord,
  type VehicleClaimRecord,
  type VehicleHistoryRecord,
} from './memberships.model.ts'

export type MembershipsRepository = ReturnType<typeof createMembershipsRepository>

export function createMembershipsRepository(db: Database) {
  const m = membershipModels(db)
  const byId = async <T>(model: { findById(id: string): { lean<R>(): Promise<R | null> } }, id: string) =>
    (await model.findById(id).lean<T>()) ?? undefined

  return {
    /** Idempotency-Key records of subscriptions (src/shared/idempotency.ts). */
    idempotency: createIdempotencyStore(db),

    // --- plans
    insertPlan: (plan: PlanRecord) => insertOnce(m.membershipPlans, plan),
    findPlan: (id: string) => byId<PlanRecord>(m.membershipPlans, id),
    async replacePlan(id: string, fields: Partial<PlanRecord>): Promise<PlanRecord | undefined> {
      await m.membershipPlans.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
      return await byId<PlanRecord>(m.membershipPlans, id)
    },
    async listPlans(filter: { lotId?: string; activeOnly: boolean; after?: string; limit: number }) {
      const query: QueryFilter<PlanRecord> = {}
      if (filter.lotId) query.lot_id = filter.lotId
      if (filter.activeOnly) query.is_active = true
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await m.membershipPlans.find(query).sort({ _id: 1 }).limit(filter.limit).lean<PlanRecord[]>()
    },

    // --- memberships
    insertMembership: (membership: MembershipRecord) => insertOnce(m.memberships, membership),
    findMembership: (id: string) => byId<MembershipRecord>(m.memberships, id),
    async deleteMembership(id: string) {
      await m.memberships.deleteOne({ _id: id })
    },
    /** A cache of derived state: every writer writes what the facts say. */
    async cacheMembership(
      id: string,
      fields: Partial<Pick<MembershipRecord, 'status' | 'auto_renew' | 'released_at'>>,
    ) {
      await m.memberships.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
    },
    async listMemberships(filter: {
      userId?: string
      lotId?: string
      status?: MembershipStatus
      statuses?: readonly MembershipStatus[]
      after?: string
      limit: number
    }) {
      const query: QueryFilter<MembershipRecord> = {}
      if (filter.userId) query.user_id = filter.userId
      if (filter.lotId) query.lot_id = filter.lotId
      if (filter.status) query.status = filter.status
      else if (filter.statuses) query.status = trusted({ $in: [...filter.statuses] })
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await m.memberships.find(query).sort({ _id: 1 }).limit(filter.limit).lean<MembershipRecord[]>()
    },

    // --- periods and their states
    insertPeriod: (period: PeriodRecord) => insertOnce(m.membershipPeriods, period),
    findPeriod: (id: string) => byId<PeriodRecord>(m.membershipPeriods, id),
    async periodsOf(membershipId: string): Promise<PeriodRecord[]> {
      const found = await readNumbered(
        (id) => m.membershipPeriods.findById(id).lean<PeriodRecord>(),
        membershipId,
        2,
      )
      return found.map((entry) => entry.fact)
    },
    /** Every writer writes the intent Stripe answered for the period's idempotency key. */
    async setPeriodIntent(id: string, intentId: string, clientSecret: string | null) {
      await m.membershipPeriods.updateOne(
        { _id: id },
        { $set: { payment_intent_id: intentId, client_secret: clientSecret } },
      )
    },
    insertPeriodState: (state: PeriodStateRecord) => insertOnce(m.membershipPeriodStates, state),
    async statesOf(periodId: string): Promise<PeriodStateRecord[]> {
      const states: PeriodState[] = ['paid', 'failed', 'canceled']
      const found = await Promise.all(
        states.map((state) => byId<PeriodStateRecord>(m.membershipPeriodStates, `${periodId}:${state}`)),
      )
      return found.filter((state): state is PeriodStateRecord => state !== undefined)
    },
    insertIntent: (intent: IntentRecord) => insertOnce(m.membershipIntents, intent),
    findIntent: (id: string) => byId<IntentRecord>(m.membershipIntents, id),

    // --- cancellation
    insertCancellation: (cancellation: CancellationRecord) =>
      insertOnce(m.membershipCancellations, cancellation),
    findCancellation: (id: string) => byId<CancellationRecord>(m.membershipCancellations, id),
    /** An end-of-period cancellation made immediate: only the cancellation's own writers reach it. */
    async makeCancellationImmediate(id: string) {
      await m.membershipCancellations.updateOne({ _id: id }, { $set: { immediately: true } })
    },

    // --- claims
    insertClaim: (claim: ClaimRecord) => insertOnce(m.membershipClaims, claim),
    findClaim: (id: string) => byId<ClaimRecord>(m.membershipClaims, id),
    /** Only the holder's claim goes. */
    async releaseClaim(id: string, membershipId: string) {
      await m.membershipClaims.deleteOne({ _id: id, membership_id: membershipId })
    },
    insertVehicleClaim: (claim: VehicleClaimRecord) => insertOnce(m.membershipVehicles, claim),
    findVehicleClaim: (vehicleId: string) => byId<VehicleClaimRecord>(m.membershipVehicles, vehicleId),
    async setVehicleSlot(vehicleId: string, membershipId: string, slot: number) {
      await m.membershipVehicles.updateOne(
        { _id: vehicleId, membership_id: membershipId },
        { $set: { slot } },
      )
    },
    async releaseVehicleClaim(vehicleId: string, membershipId: string) {
      await m.membershipVehicles.deleteOne({ _id: vehicleId, membership_id: membershipId })
    },
    insertSlot: (slot: SlotRecord) => insertOnce(m.membershipVehicleSlots, slot),
    async slotsOf(membershipId: string, limit: number): Promise<SlotRecord[]> {
      const found = await Promise.all(
        Array.from({ length: limit }, (_, i) =>
          byId<SlotRecord>(m.membershipVehicleSlots, `${membershipId}:${i + 1}`),
        ),
      )
      return found.filter((slot): slot is SlotRecord => slot !== undefined)
    },
    async releaseSlot(id: string, vehicleId: string) {
      await m.membershipVehicleSlots.deleteOne({ _id: id, vehicle_id: vehicleId })
    },

    /** A vehicle's joins and leaves, oldest first; `next` is the first free number. */
    async vehicleHistory(vehicleId: string): Promise<{ events: VehicleHistoryRecord[]; next: number }> {
      const found = await readNumbered(
        (id) => m.membershipVehicleHistory.findById(id).lean<VehicleHistoryRecord>(),
        vehicleId,
        2,
      )
      const next = found.length === 0 ? 0 : Math.max(...found.map((entry) => entry.index)) + 1
      return { events: found.map((entry) => entry.fact), next }
    },
    insertVehicleHistory: (event: VehicleHistoryRecord) => insertOnce(m.membershipVehicleHistory, event),

    // --- usage
    findUsage: (sessionId: string) => byId<UsageRecord>(m.membershipUsage, sessionId),
    insertUsage: (usage: UsageRecord) => insertOnce(m.membershipUsage, usage),
    async setUsageIndex(sessionId: string, indexId: string) {
      await m.membershipUsage.updateOne({ _id: sessionId }, { $set: { index_id: indexId } })
    },
    insertUsageIndex: (entry: UsageIndexRecord) => insertOnce(m.membershipUsageIndex, entry),
    /** A period's usage by `_id`, one entry per session (a retried listener may leave a twin). */
    async usageOf(
      membershipId: string,
      period: number,
    ): Promise<{ entries: UsageIndexRecord[]; next: number }> {
      const found = await readNumbered(
        (id) => m.membershipUsageIndex.findById(id).lean<UsageIndexRecord>(),
        `${membershipId}:${period}`,
      )
      const seen = new Set<string>()
      const entries: UsageIndexRecord[] = []
      for (const { fact } of found) {
        if (seen.has(fact.session_id)) continue
        seen.add(fact.session_id)
        entries.push(fact)
      }
      const next = found.length === 0 ? 0 : Math.max(...found.map((entry) => entry.index)) + 1
      return { entries, next }
    },
  }
}
