import type { QueryFilter } from 'mongoose'
import { type Database, insertOnce, trusted } from '../../shared/mongo.ts'
import {
  type ActivePlateRecord,
  type ExitRecord,
  type SessionRecord,
  sessionModels,
  type TicketRecord,
} from './sessions.model.ts'

export type SessionsRepository = ReturnType<typeof createSessionsRepository>

export function createSessionsRepository(db: Database) {
  const { sessions, activePlates, tickets, exits } = sessionModels(db)
  return {
    claimPlate: (claim: ActivePlateRecord) => insertOnce(activePlates, claim),

    async findPlateClaim(plate: string): Promise<ActivePlateRecord | undefined> {
      return (await activePlates.findById(plate).lean<ActivePlateRecord>()) ?? undefined
    },

    /** Only the claim's own session lets go of it. */
    async releasePlate(plate: string, sessionId: string): Promise<void> {
      await activePlates.deleteOne({ _id: plate, session_id: sessionId })
    },

    claimTicket: (ticket: TicketRecord) => insertOnce(tickets, ticket),

    async findTicket(ticketNumber: string): Promise<TicketRecord | undefined> {
      return (await tickets.findById(ticketNumber).lean<TicketRecord>()) ?? undefined
    },

    async releaseTicket(ticketNumber: string, sessionId: string): Promise<void> {
      await tickets.deleteOne({ _id: ticketNumber, session_id: sessionId })
    },

    async insertSession(session: SessionRecord): Promise<void> {
      await sessions.create(session)
    },

    async deleteSession(id: string): Promise<void> {
      await sessions.deleteOne({ _id: id })
    },

    async findSession(id: string): Promise<SessionRecord | undefined> {
      return (await sessions.findById(id).lean<SessionRecord>()) ?? undefined
    },

    /** Written by the owner of the session's state only (its plate claim or its exit fact). */
    async updateSession(id: string, fields: Partial<Omit<SessionRecord, '_id'>>): Promise<void> {
      await sessions.updateOne({ _id: id }, { $set: { ...fields, updated_at: new Date() } })
    },

    recordExit: (exit: ExitRecord) => insertOnce(exits, exit),

    async findExit(sessionId: string): Promise<ExitRecord | undefined> {
      return (await exits.findById(sessionId).lean<ExitRecord>()) ?? undefined
    },

    async listSessions(filter: {
      status?: SessionRecord['status'] | undefined
      lotId?: string | undefined
      userId?: string | undefined
      after?: string | undefined
      limit: number
    }): Promise<SessionRecord[]> {
      const query: QueryFilter<SessionRecord> = {}
      if (filter.status) query.status = filter.status
      if (filter.lotId) query.lot_id = filter.lotId
      if (filter.userId) query.user_id = filter.userId
      if (filter.after) query._id = trusted({ $gt: filter.after })
      return await sessions.find(query).sort({ _id: 1 }).limit(filter.limit).lean<SessionRecord[]>()
    },

    /** Active sessions that hold a space, in pages (the hot state's rebuild). */
    async *holds(pageSize = 500): AsyncIterable<{ sessionId: string; spaceId: string }[]> {
      let after = ''
      for (;;) {
        const rows = await sessions
          .find({ status: 'active', _id: trusted({ $gt: after }) }, { _id: 1, space_id: 1 })
          .sort({ _id: 1 })
          .limit(pageSize)
          .lean<Pick<SessionRecord, '_id' | 'space_id'>[]>()
        const held = rows.flatMap((r) => (r.space_id ? [{ sessionId: r._id, spaceId: r.space_id }] : []))
        if (held.length > 0) yield held
        if (rows.length < pageSize) return
        after = rows[rows.length - 1]?._id ?? after
      }
    },
  }
}
