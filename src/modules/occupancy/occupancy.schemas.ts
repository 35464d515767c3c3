import { z } from '@hono/zod-openapi'
import { pageSchema } from '../../http/openapi.ts'
import { overlays, sensedStates, spaceTypes } from './occupancy.contract.ts'
import { changeKinds } from './occupancy.state.ts'

const statuses = [...sensedStates, ...overlays] as const
const uuid = (name: string) => z.uuid().openapi({ param: { name, in: 'path' } })

export const ScopeIdParamSchema = z.object({ id: uuid('id') })

export const AvailabilitySchema = z
  .object({
    total: z.int().openapi({ example: 50 }),
    available: z.int().openapi({ example: 35, description: 'Free and not laid over by an operator.' }),
    occupied: z.int().openapi({ example: 12 }),
    unknown: z.int().openapi({ example: 0, description: 'No reading yet, or the sensor went silent.' }),
    reserved: z.int().openapi({ example: 2 }),
    maintenance: z.int().openapi({ example: 1 }),
    closed: z.int().openapi({ example: 0 }),
    occupancy_rate: z.number().openapi({
      example: 30,
      description:
        'Percent of the spaces with a known state that are not available (occupied, reserved, in maintenance or closed), one decimal; 0 when none is known.',
    }),
    as_of: z.iso.datetime(),
  })
  .openapi('Availability', {
    description: 'Counts by the status that counts: an operator overlay wins over the sensed state.',
  })

export const LotAvailabilitySchema = AvailabilitySchema.extend({ lot_id: z.string() }).openapi(
  'LotAvailability',
)
export const LevelAvailabilitySchema = AvailabilitySchema.extend({ level_id: z.string() }).openapi(
  'LevelAvailability',
)
export const ZoneAvailabilitySchema = AvailabilitySchema.extend({ zone_id: z.string() }).openapi(
  'ZoneAvailability',
)

export const SpaceStateSchema = z
  .object({
    space_id: z.string(),
    number: z.string().openapi({ example: 'A-105' }),
    type: z.enum(spaceTypes),
    lot_id: z.string(),
    level_id: z.string(),
    zone_id: z.string(),
    sensed: z.enum(sensedStates).openapi({ description: 'What the sensor says.' }),
    overlay: z.enum(overlays).nullable().openapi({ description: 'What an operator laid over it.' }),
    status: z.enum(statuses).openapi({
      description:
        'The overlay when there is one; occupied while a parking session holds the space; the sensed state otherwise.',
    }),
    changed_at: z.iso.datetime(),
    device_id: z.string().nullable(),
    pending: z
      .enum(sensedStates)
      .nullable()
      .openapi({ description: 'A sensed change waiting for the debounce dwell time.' }),
    session_id: z.string().nullable().openapi({ description: 'The parking session holding the space.' }),
  })
  .openapi('SpaceState')

export const SpaceLiveStateSchema = SpaceStateSchema.extend({
  device: z
    .object({
      id: z.string(),
      battery: z.number().nullable().openapi({ description: 'Percent, 0..100, as last reported.' }),
      signal: z.number().nullable().openapi({ description: 'dBm, as last reported.' }),
      last_seen_at: z.iso
        .datetime()
        .nullable()
        .openapi({ description: 'When the platform last heard from it; null if never.' }),
      stale: z.boolean().openapi({ description: 'Silent for longer than the staleness window.' }),
    })
    .nullable()
    .openapi({ description: "The bound sensor's health; null when no sensor is bound." }),
}).openapi('SpaceLiveState')

export const SpaceLiveStatePageSchema = pageSchema(SpaceLiveStateSchema, 'SpaceLiveStatePage')

export const SpaceLiveStateQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(500),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,400}$/)
    .optional()
    .openapi({ description: 'The `next_cursor` of the previous page.' }),
})

const flag = z.enum(['true', 'false']).transform((v) => v === 'true')

export const FreeSpacesQuerySchema = z.object({
  lot_id: z.uuid().optional(),
  level_id: z.uuid().optional(),
  zone_id: z.uuid().optional(),
  type: z.enum(spaceTypes).optional(),
  ev: flag.optional().openapi({ description: 'Only EV spaces (type EV).' }),
  handicapped: flag.optional().openapi({ description: 'Only accessible spaces (type HANDICAPPED).' }),
  limit: z.coerce.number().int().min(1).max(500).default(50),
})

export const FreeSpacesSchema = z
  .object({ total: z.int(), data: z.array(SpaceStateSchema) })
  .openapi('FreeSpaces', {
    description: 'How many free spaces match, and the first `limit` of them by number.',
  })

export const HistoryQuerySchema = z.object({
  from: z.iso
    .datetime({ offset: true })
    .optional()
    .openapi({ description: 'Default: 24 hours before `to`.' }),
  to: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Default: now.' }),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,400}$/)
    .optional(),
})

export const HistoryEntrySchema = z
  .object({
    id: z.string(),
    space_id: z.string(),
    kind: z.enum(changeKinds).openapi({
      description:
        'Within the space, status_from -> status_to: sensor, stale, bound, unbound, overlay, held and released (a parking session took or let go of it). The space counted in (placed: +1 total and status_to) or out (removed: -1 total and status_from); a move to another zone or type is a removed and a placed.',
    }),
    sensed_from: z.enum(sensedStates),
    sensed_to: z.enum(sensedStates),
    status_from: z.enum(statuses),
    status_to: z.enum(statuses),
    overlay: z.enum(overlays).nullable(),
    at: z.iso
      .datetime()
      .openapi({ description: 'When it happened (the first reading of a debounced change).' }),
    recorded_at: z.iso.datetime(),
    device_id: z.string().nullable(),
    boot: z.string().nullable(),
    seq: z.int().nullable(),
    session_id: z.string().nullable().openapi({ description: 'The parking session holding the space.' }),
  })
  .openapi('SpaceHistoryEntry')

export const HistoryPageSchema = pageSchema(HistoryEntrySchema, 'SpaceHistoryPage')

export const FeedQuerySchema = z.object({
  since: z
    .string()
    .regex(/^\d{1,20}-\d{1,20}$/)
    .optional()
    .openapi({ description: 'Resume after this event id (the Last-Event-ID header does the same).' }),
})

export const DeadLetterSchema = z
  .object({
    id: z.string(),
    at: z.iso.datetime(),
    reason: z.string(),
    topic: z.string(),
    payload: z.string(),
  })
  .openapi('DeadLetter')

export const DeadLetterListSchema = z.object({ data: z.array(DeadLetterSchema) }).openapi('DeadLetterList')
export const DeadLetterQuerySchema = z.object({ limit: z.coerce.number().int().min(1).max(500).default(100) })
