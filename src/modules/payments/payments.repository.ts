import type { QueryFilter } from 'mongoose'
import { type Database, insertOnce, readNumbered, trusted } from '../../shared/mongo.ts'
import {
  type PaymentRecord,
  type PaymentStateRecord,
  type PaymentStatus,
  paymentModels,
  type RefundRecord,
  type SettlementRecord,
  type StateFact,
  type StripeEventRecord,
  type StripeIntentRecord,
  stateFacts,
} from './payments.model.ts'

export type PaymentsRepository = ReturnType<typeof createPaymentsRepository>

export function createPaymentsRepository(db: Database) {
  const { payments, settlements, paymentStates, refunds, stripeEvents, stripeIntents } = paymentModels(db)

  return {
    // Settlements

    insertSettlement: (fact: SettlementRecord) => insertOnce(settlements, fact),

    async findSettlement(id: string): Promise<SettlementRecord | undefined> {
      return (await settlements.findById(id).lean<SettlementRecord>()) ?? undefined
    },

    /** Compensation: only the fact this payment holds goes. */
    async deleteSettlement(id: string, paymentId: string): Promise<void> {
      await settlements.deleteOne({ _id: id, payment_id: paymentId })
    },

    async settlementsOf(sessionId: string) {
      return await readNumbered((id) => settlements.findById(id).lean<SettlementRecord>(), sessionId)
    },

    // Payments

    insertPayment: (payment: PaymentRecord) => insertOnce(payments, payment),

    async findPayment(id: string): Promise<PaymentRecord | undefined> {
      return (await payments.findById(id).lean<PaymentRecord>()) ?? undefined
    },

    /** Cache fields whose value every writer derives alike from the facts. */
    async updatePayment(id: string, fields: Partial<PaymentRecord>): Promise<void> {
      await payments.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
    },

    async listPayments(filter: {
      userId?: string | undefined
      sessionId?: string | undefined
      after?: string | undefined
      limit: number
    }) {
      const query: QueryFilter<PaymentRecord> = {}
      if (filter.userId !== undefined) query.user_id = filter.userId
      if (filter.sessionId !== undefined) query.session_id = filter.sessionId
      if (filter.after !== undefined) query._id = trusted({ $gt: filter.after })
      return await payments.find(query).sort({ _id: 1 }).limit(filter.limit).lean<PaymentRecord[]>()
    },

    /** Stripe payments still waiting, created before `before`: the reconciliation's work list. */
    async listWaiting(before: Date, statuses: readonly PaymentStatus[], limit: number, after?: string) {
      const query: QueryFilter<PaymentRecord> = {
        provider: 'stripe',
        status: trusted({ $in: [...statuses] }),
        created_at: trusted({ $lt: before }),
      }
      if (after !== undefined) query._id = trusted({ $gt: after })
      return await payments.find(query).sort({ _id: 1 }).limit(limit).lean<PaymentRecord[]>()
    },

    // State facts

    insertState: (fact: PaymentStateRecord) => insertOnce(paymentStates, fact),

    async statesOf(paymentId: string): Promise<Set<StateFact>> {
      const found = await Promise.all(
        stateFacts.map((state) => paymentStates.findById(`${paymentId}:${state}`).lean<PaymentStateRecord>()),
      )
      return new Set(found.filter((fact) => fact !== null).map((fact) => fact.state))
    },

    /** One state fact, by `_id`. */
    async hasState(paymentId: string, state: StateFact): Promise<boolean> {
      return (await paymentStates.findById(`${paymentId}:${state}`).lean<PaymentStateRecord>()) !== null
    },

    // Refunds

    insertRefund: (refund: RefundRecord) => insertOnce(refunds, refund),

    async refundsOf(paymentId: string) {
      return await readNumbered((id) => refunds.findById(id).lean<RefundRecord>(), paymentId)
    },

    /** Written by the refund's owner only, after Stripe took it. */
    async setProviderRefund(id: string, providerRefundId: string): Promise<void> {
      await refunds.updateOne({ _id: id }, { $set: { provider_refund_id: providerRefundId } })
    },

    /** Stripe refunds whose answer was lost, written before `before`: the reconciliation's. */
    async listRefundsInDoubt(before: Date, limit: number, after?: string) {
      const query: QueryFilter<RefundRecord> = {
        provider: 'stripe',
        provider_refund_id: null,
        created_at: trusted({ $lt: before }),
      }
      if (after !== undefined) query._id = trusted({ $gt: after })
      return await refunds.find(query).sort({ _id: 1 }).limit(limit).lean<RefundRecord[]>()
    },

    async deleteRefund(id: string): Promise<void> {
      await refunds.deleteOne({ _id: id })
    },

    // Stripe

    async findEvent(id: string): Promise<StripeEventRecord | undefined> {
      return (await stripeEvents.findById(id).lean<StripeEventRecord>()) ?? undefined
    },

    insertEvent: (event: StripeEventRecord) => insertOnce(stripeEvents, event),

    insertIntent: (intent: StripeIntentRecord) => insertOnce(stripeIntents, intent),

    async findIntent(id: string): Promise<StripeIntentRecord | undefined> {
      return (await stripeIntents.findById(id).lean<StripeIntentRecord>()) ?? undefined
    },
  }
}
