import { z } from '@hono/zod-openapi'
import { idempotencyHeader, PageQuerySchema, pageSchema } from '../../http/openapi.ts'
import { overlays, spaceTypes } from '../occupancy/occupancy.contract.ts'
import { weekdays } from './facilities.model.ts'
import { MAX_BULK_SPACES } from './facilities.service.ts'

// Every rule is a pattern or a bound, so that the OpenAPI document states what is accepted (the
// API is fuzzed from it). The exceptions are checked in the service and named as field problems:
// a time zone Intl does not know, and a bulk range whose `to` is below `from` or too wide.

const id = z.uuid().openapi({ example: '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a' })
const name = z.string().max(100).regex(/\S/, 'must not be blank').openapi({ example: 'Central Garage' })
const timestamps = { created_at: z.iso.datetime(), updated_at: z.iso.datetime() }

/** Upper or lower case; stored uppercase. */
const spaceNumber = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/,
    'a space number: up to 32 letters, digits, dots, dashes and underscores, starting with a letter or digit',
  )
  .openapi({ example: 'A-105' })

const flag = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,31}$/, 'a flag: lowercase letters, digits and underscores')
  .openapi({ example: 'ev_charger' })

const clock = /^(?:[01]\d|2[0-3]):[0-5]\d$/

export const OpeningIntervalSchema = z
  .strictObject({
    day: z.union([z.int().min(0).max(6), z.enum(weekdays)]).openapi({
      description: '0 (Sunday) to 6 (Saturday), or `sun` to `sat`; answered as the name.',
      example: 'mon',
    }),
    opens: z.string().regex(clock, 'a time HH:MM, 00:00 to 23:59').openapi({ example: '07:00' }),
    closes: z
      .string()
      .regex(/^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$/, 'a time HH:MM, 00:00 to 24:00')
      .openapi({
        example: '22:00',
        description: 'At or before `opens`: the interval ends the next day (equal: 24 hours).',
      }),
  })
  .openapi('OpeningInterval')

export const LotInputSchema = z
  .strictObject({
    name,
    address: z
      .string()
      .max(300)
      .regex(/\S/, 'must not be blank')
      .openapi({ example: '1 Main Street, Springfield' }),
    latitude: z.number().min(-90).max(90).openapi({ example: 48.8566 }),
    longitude: z.number().min(-180).max(180).openapi({ example: 2.3522 }),
    time_zone: z
      .string()
      .max(64)
      .regex(/^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+){0,2}$/, 'an IANA time zone name')
      .openapi({
        example: 'Europe/Paris',
        description: 'An IANA time zone name; answered in canonical form.',
      }),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, 'an ISO 4217 currency code: three uppercase letters')
      .openapi({ example: 'EUR' }),
    opening_hours: z.array(OpeningIntervalSchema).min(1).max(28).nullable().default(null).openapi({
      description: 'Opening intervals by weekday; null (or left out): always open.',
    }),
  })
  .openapi('LotInput', { description: 'On update, a full replacement.' })

export const LotSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    address: z.string(),
    latitude: z.number(),
    longitude: z.number(),
    time_zone: z.string(),
    currency: z.string(),
    opening_hours: z
      .array(z.object({ day: z.enum(weekdays), opens: z.string(), closes: z.string() }))
      .nullable(),
    ...timestamps,
  })
  .openapi('Lot')

export const LevelCreateSchema = z
  .strictObject({
    lot_id: id,
    name: name.openapi({ example: 'Level 1' }),
    floor: z.int().min(-50).max(200).openapi({ example: 1, description: 'Negative below ground.' }),
  })
  .openapi('LevelCreate')

export const LevelUpdateSchema = LevelCreateSchema.omit({ lot_id: true }).openapi('LevelUpdate', {
  description: 'A full replacement; a level stays in its lot.',
})

export const LevelSchema = z
  .object({ id: z.string(), lot_id: z.string(), name: z.string(), floor: z.int(), ...timestamps })
  .openapi('Level')

const description = z.string().max(500).openapi({ example: 'North wing, short stay' })

export const ZoneCreateSchema = z
  .strictObject({
    level_id: id,
    name: name.openapi({ example: 'Zone A' }),
    description: description.optional(),
  })
  .openapi('ZoneCreate')

export const ZoneUpdateSchema = ZoneCreateSchema.omit({ level_id: true }).openapi('ZoneUpdate', {
  description: 'A full replacement (a description left out is cleared); a zone stays on its level.',
})

export const ZoneSchema = z
  .object({
    id: z.string(),
    lot_id: z.string(),
    level_id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    ...timestamps,
  })
  .openapi('Zone')

export const SpaceInputSchema = z
  .strictObject({
    zone_id: id,
    number: spaceNumber,
    type: z.enum(spaceTypes),
    flags: z.array(flag).max(16).default([]),
  })
  .openapi('SpaceInput', {
    description:
      'On update, a full replacement of these fields (the overlay has its own operation); a new zone_id moves the space.',
  })

export const SpaceSchema = z
  .object({
    id: z.string(),
    lot_id: z.string(),
    level_id: z.string(),
    zone_id: z.string(),
    number: z.string().openapi({ example: 'A-105', description: 'Uppercase; unique in its lot.' }),
    type: z.enum(spaceTypes),
    flags: z.array(z.string()),
    overlay: z.enum(overlays).nullable().openapi({
      description: 'Set by operators; lies over the sensed state, which the occupancy capability keeps.',
    }),
    overlay_reason: z.string().nullable(),
    ...timestamps,
  })
  .openapi('Space')

export const SpaceBulkSchema = z
  .strictObject({
    zone_id: id,
    prefix: z
      .string()
      .regex(
        /^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,15})?$/,
        'up to 16 letters, digits, dots, dashes and underscores',
      )
      .default('')
      .openapi({ example: 'A-' }),
    from: z.int().min(0).max(999_999).openapi({ example: 1 }),
    to: z
      .int()
      .min(0)
      .max(999_999)
      .openapi({
        example: 500,
        description: `Inclusive; at least \`from\`, and at most ${MAX_BULK_SPACES} numbers per call.`,
      }),
    pad: z.int().min(0).max(8).default(0).openapi({ example: 3, description: 'Zero-padding width.' }),
    type: z.enum(spaceTypes),
    flags: z.array(flag).max(16).default([]),
  })
  .openapi('SpaceBulkCreate')

export const SpaceBulkResultSchema = z
  .object({
    zone_id: z.string(),
    created: z.int().openapi({ example: 500 }),
    skipped: z.array(z.string()).openapi({
      description: 'Numbers that existed already in the lot; left as they are.',
      example: [],
    }),
  })
  .openapi('SpaceBulkResult')

export const OverlayInputSchema = z
  .strictObject({
    overlay: z.enum(overlays).nullable(),
    reason: z.string().max(200).optional().openapi({ example: 'Resurfacing until Friday' }),
  })
  .openapi('SpaceOverlayInput', { description: 'null clears the overlay (and its reason).' })

export const LotListSchema = pageSchema(LotSchema, 'LotList')
export const LevelListSchema = pageSchema(LevelSchema, 'LevelList')
export const ZoneListSchema = pageSchema(ZoneSchema, 'ZoneList')
export const SpaceListSchema = pageSchema(SpaceSchema, 'SpaceList')

export const LotListQuery = PageQuerySchema.extend({
  name_prefix: z.string().max(100).optional().openapi({ description: 'Names starting with this, any case.' }),
})
export const LevelListQuery = PageQuerySchema.extend({ lot_id: id.optional() })
export const ZoneListQuery = PageQuerySchema.extend({ level_id: id.optional(), lot_id: id.optional() })
export const SpaceListQuery = PageQuerySchema.extend({
  lot_id: id.optional(),
  level_id: id.optional(),
  zone_id: id.optional(),
  type: z.enum(spaceTypes).optional(),
  overlay: z
    .enum([...overlays, 'none'])
    .optional()
    .openapi({ description: '`none`: spaces without an overlay.' }),
  number_prefix: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,32}$/)
    .optional()
    .openapi({ description: 'Numbers starting with this, any case.' }),
})

export const IdParamSchema = z.object({ id: id.openapi({ param: { name: 'id', in: 'path' } }) })

export const IdempotencyHeaderSchema = idempotencyHeader(
  'Makes a retry of this create safe: a second request with the same key and body answers the first one’s resource.',
)
