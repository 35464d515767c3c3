import type { Model, QueryFilter } from 'mongoose'
import { createIdempotencyStore } from '../../shared/idempotency.ts'
import { type Database, insertManyOnce, insertOnce, readNumbered, trusted } from '../../shared/mongo.ts'
import {
  type AttemptRecord,
  type DeliveryRecord,
  type DeliveryStatus,
  type EventRecord,
  type SubscriptionRecord,
  webhookModels,
} from './webhooks.model.ts'

export type WebhooksRepository = ReturnType<typeof createWebhooksRepository>

export function createWebhooksRepository(db: Database) {
  const { subscriptions, events, deliveries, attempts } = webhookModels(db)
  return {
    /** Idempotency-Key records of subscription creates, test events and replays. */
    idempotency: createIdempotencyStore(db),

    /** false when a subscription with this `_id` exists already (a retry of a keyed create). */
    insertSubscription: (record: SubscriptionRecord) => insertOnce(subscriptions, record),

    async findSubscription(id: string): Promise<SubscriptionRecord | undefined> {
      return (await subscriptions.findById(id).lean<SubscriptionRecord>()) ?? undefined
    },

    async updateSubscription(id: string, fields: Partial<Omit<SubscriptionRecord, '_id'>>): Promise<boolean> {
      const result = await subscriptions.updateOne({ _id: id }, { $set: fields })
      return result.matchedCount > 0
    },

    async deleteSubscription(id: string): Promise<boolean> {
      return (await subscriptions.deleteOne({ _id: id })).deletedCount > 0
    },

    /** A page of subscriptions, oldest first. */
    async listSubscriptions(filter: { limit: number; after?: string | undefined }) {
      const query: QueryFilter<SubscriptionRecord> = {}
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await subscriptions.find(query).sort({ _id: 1 }).limit(filter.limit).lean<SubscriptionRecord[]>()
    },

    /** Every enabled subscription (a few per deployment; the sink's cache). */
    async enabledSubscriptions(): Promise<SubscriptionRecord[]> {
      return await subscriptions
        .find({ enabled: true })
        .sort({ _id: 1 })
        .limit(10_000)
        .lean<SubscriptionRecord[]>()
    },

    /** Inserts the events not recorded yet; answers the stored copies of those that were. */
    async recordEvents(records: EventRecord[]): Promise<Map<string, EventRecord>> {
      const duplicates = await insertManyOnce(events, records)
      const stored = new Map<string, EventRecord>()
      const ids = [...duplicates].flatMap((index) => records[index]?._id ?? [])
      if (ids.length === 0) return stored
      // By `_id`, one read each: on FerretDB v1 an `_id: {$in}` filter scans the whole collection
      // (2.4 s at 6,250 deliveries in npm run bench:webhooks, against 19 ms for a findById).
      const found = await byIds(events, ids)
      for (const event of found) stored.set(event._id, event)
      return stored
    },

    async findEvent(id: string): Promise<EventRecord | undefined> {
      return (await events.findById(id).lean<EventRecord>()) ?? undefined
    },

    /** Inserts deliveries; one recorded already (the same event and subscription) stays as it is. */
    async insertDeliveries(records: DeliveryRecord[]): Promise<void> {
      await insertManyOnce(deliveries, records)
    },

    async findDelivery(id: string): Promise<DeliveryRecord | undefined> {
      return (await deliveries.findById(id).lean<DeliveryRecord>()) ?? undefined
    },

    /** Only the holder of the delivery's lease writes. */
    async updateDelivery(id: string, fields: Partial<Omit<DeliveryRecord, '_id'>>): Promise<void> {
      await deliveries.updateOne({ _id: id }, { $set: fields })
    },

    /** A subscription's deliveries, newest first (`_id`s start with the event time). */
    async listDeliveries(filter: {
      subscriptionId: string
      status?: DeliveryStatus | undefined
      limit: number
      before?: string | undefined
    }): Promise<DeliveryRecord[]> {
      const query: QueryFilter<DeliveryRecord> = { subscription_id: filter.subscriptionId }
      if (filter.status) query.status = filter.status
      if (filter.before) query._id = trusted({ $lt: filter.before })
      return await deliveries.find(query).sort({ _id: -1 }).limit(filter.limit).lean<DeliveryRecord[]>()
    },

    /** A page of pending deliveries (all, or one subscription's), oldest first. */
    async pendingDeliveries(filter: {
      subscriptionId?: string | undefined
      limit: number
      after?: string | undefined
    }): Promise<DeliveryRecord[]> {
      const query: QueryFilter<DeliveryRecord> = { status: 'pending' }
      if (filter.subscriptionId) query.subscription_id = filter.subscriptionId
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await deliveries.find(query).sort({ _id: 1 }).limit(filter.limit).lean<DeliveryRecord[]>()
    },

    /** false when the attempt number is taken already (a crashed holder recorded it). */
    recordAttempt: (record: AttemptRecord) => insertOnce(attempts, record),

    async attemptsOf(deliveryId: string): Promise<AttemptRecord[]> {
      const found = await readNumbered((id) => attempts.findById(id).lean<AttemptRecord>().exec(), deliveryId)
      return found.map(({ fact }) => fact)
    },

    /** A claimed batch's deliveries, each by `_id` (see recordEvents for why not `$in`). */
    findDeliveries: (ids: string[]) => byIds(deliveries, ids),

    /** The events of a claimed batch, each by `_id`. */
    findEvents: (ids: string[]) => byIds(events, ids),

    /**
     * `data.purge`: finished (succeeded or failed) deliveries whose `_id` sorts below `idBelow`
     * (ids start with a time), and their attempts, in bounded batches. Pending ones stay, however
     * old. Attempts go first: a run cut between the two finds them next time through their delivery.
     */
    async purgeFinishedDeliveries(
      idBelow: string,
      batchSize = 1_000,
      batches = 20,
    ): Promise<{ deliveries: number; attempts: number }> {
      const purged = { deliveries: 0, attempts: 0 }
      for (let i = 0; i < batches; i++) {
        const ids = (
          await deliveries
            .find(
              {
                _id: trusted({ $lt: idBelow }),
                status: trusted({ $in: ['succeeded', 'failed'] as DeliveryStatus[] }),
              },
              { _id: 1 },
            )
            .sort({ _id: 1 })
            .limit(batchSize)
            .lean<{ _id: string }[]>()
        ).map((r) => r._id)
        const [first, last] = [ids[0], ids.at(-1)]
        if (!first || !last) break
        // Attempt ids are `${deliveryId}:${n}`: the batch's lie in [first:, last;) (';' follows ':').
        purged.attempts += (
          await attempts.deleteMany({
            _id: trusted({ $gt: `${first}:`, $lt: `${last};` }),
            delivery_id: trusted({ $in: ids }),
          })
        ).deletedCount
        purged.deliveries += (await deliveries.deleteMany({ _id: trusted({ $in: ids }) })).deletedCount
        if (ids.length < batchSize) break
      }
      return purged
    },

    /**
     * `data.purge`: events recorded before `recordedBefore` that no delivery names any more (a
     * pending or replayed delivery keeps its event), in bounded pages by `_id`.
     */
    async purgeUnreferencedEvents(recordedBefore: Date, batchSize = 1_000, batches = 20): Promise<number> {
      let deleted = 0
      let after = ''
      for (let i = 0; i < batches; i++) {
        const ids = (
          await events
            .find({ _id: trusted({ $gt: after }), recorded_at: trusted({ $lt: recordedBefore }) }, { _id: 1 })
            .sort({ _id: 1 })
            .limit(batchSize)
            .lean<{ _id: string }[]>()
        ).map((r) => r._id)
        if (ids.length === 0) break
        const named = new Set(
          (
            await deliveries
              .find({ event_id: trusted({ $in: ids }) }, { event_id: 1 })
              .lean<{ event_id: string }[]>()
          ).map((r) => r.event_id),
        )
        const unnamed = ids.filter((id) => !named.has(id))
        if (unnamed.length > 0) {
          deleted += (await events.deleteMany({ _id: trusted({ $in: unnamed }) })).deletedCount
        }
        after = ids.at(-1) ?? after
        if (ids.length < batchSize) break
      }
      return deleted
    },
  }
}

/** The documents with these `_id`s that exist, read one `findById` each, concurrently. */
async function byIds<T>(model: Model<T>, ids: readonly string[]): Promise<T[]> {
  const found = await Promise.all(ids.map((id) => model.findById(id).lean<T>().exec()))
  return found.filter((doc): doc is NonNullable<typeof doc> => doc !== null) as T[]
}
