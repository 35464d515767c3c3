import { z } from '@hono/zod-openapi'
import { rateTypes, weekdays } from '../../../workers/fee.ts'
import { idempotencyHeader, PageQuerySchema, pageSchema } from '../../http/openapi.ts'
import { MAX_QUOTE_DAYS } from './pricing.service.ts'

// Every rule is a pattern or a bound, so that the OpenAPI document states what is accepted (the
// API is fuzzed from it). Checks across fields or resources are made in the service and named as
// field problems: the lot's currency, a zone of another lot, effective_to after effective_from,
// exit_time after entry_time.

/** 100,000.00 in a two-decimal currency; larger single charges are a typing mistake. */
export const MAX_AMOUNT = 10_000_000

const id = z.uuid().openapi({ example: '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a' })
const amount = (description: string, example: number) =>
  z
    .int()
    .min(0)
    .max(MAX_AMOUNT)
    .openapi({ description: `${description} Integer minor units.`, example })
const instant = z.iso.datetime({ offset: true }).openapi({ example: '2026-01-01T00:00:00Z' })
const clock = (example: string) =>
  z
    .string()
    .regex(/^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$/, 'a local time HH:MM, 00:00 to 24:00')
    .openapi({ example })
const vehicleTypeCode = z
  .string()
  .regex(/^[a-z][a-z0-9-]{1,31}$/, 'a vehicle type code: lowercase letters, digits and dashes')
  .openapi({ example: 'standard' })

const bandWindow = {
  name: z.string().max(60).regex(/\S/, 'must not be blank').openapi({ example: 'Evening peak' }),
  days: z
    .array(z.enum(weekdays))
    .min(1)
    .max(7)
    .openapi({
      description: 'Local weekdays on which the band starts.',
      example: ['mon', 'tue', 'wed', 'thu', 'fri'],
    }),
  start: clock('17:00'),
  end: clock('19:00').openapi({
    description: 'At or before `start`: the band runs into the next day (equal: 24 hours).',
  }),
}

export const BandSchema = z
  .discriminatedUnion('kind', [
    z
      .strictObject({
        kind: z.literal('peak'),
        ...bandWindow,
        multiplier_percent: z.int().min(0).max(1000).openapi({
          description: 'The step price times this / 100, rounded half up: 150 is one and a half times.',
          example: 150,
        }),
      })
      .openapi('PeakBand'),
    z
      .strictObject({
        kind: z.literal('price'),
        ...bandWindow,
        step_amount: amount('The price of a step that starts in this band.', 200),
      })
      .openapi('PriceBand'),
  ])
  .openapi('RateBand', {
    description:
      "A time-of-day and weekday band in the lot's local time. A step is priced by the first band (in list order) in force at the step's start.",
  })

export const RateInputSchema = z
  .strictObject({
    name: z.string().max(100).regex(/\S/, 'must not be blank').openapi({ example: 'Standard Hourly' }),
    lot_id: id,
    zone_id: id
      .nullable()
      .default(null)
      .openapi({ description: 'Only for stays in this zone; null: any zone.' }),
    vehicle_type: vehicleTypeCode.nullable().default(null).openapi({
      description: 'Only for this vehicle type (a vehicle type code); null: any type.',
    }),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, 'an ISO 4217 currency code: three uppercase letters')
      .optional()
      .openapi({ example: 'USD', description: "Must be the lot's currency; left out: the lot's." }),
    rate_type: z.enum(rateTypes).openapi({
      description:
        '`hourly`: `amount` per started step of `step_minutes`; `daily`: `amount` per calendar day touched; `flat`: `amount` once per stay.',
    }),
    amount: amount('The price of a step, a day or a stay, by `rate_type`.', 500),
    step_minutes: z.int().min(1).max(1440).default(60).openapi({ description: 'hourly only.', example: 60 }),
    grace_period_minutes: z.int().min(0).max(1440).default(0).openapi({
      description: 'A stay no longer than this costs nothing.',
      example: 15,
    }),
    daily_max: amount('hourly only: the most one local calendar day costs; null: no cap.', 2000)
      .nullable()
      .default(null),
    lost_ticket_fee: amount('Added as its own line when the ticket is lost.', 2500).default(0),
    bands: z.array(BandSchema).max(24).default([]).openapi({ description: 'hourly only.' }),
    effective_from: instant.optional().openapi({ description: 'Left out: now.' }),
    effective_to: instant.nullable().default(null).openapi({ description: 'Exclusive; null: open-ended.' }),
    is_active: z.boolean().default(true).openapi({
      description: 'Only active plans are picked. DELETE sets it to false; a PUT may set it back.',
    }),
  })
  .openapi('RateInput', { description: 'On update, a full replacement.' })

const bandOut = z.union([
  z.object({
    kind: z.literal('peak'),
    name: z.string(),
    days: z.array(z.enum(weekdays)),
    start: z.string(),
    end: z.string(),
    multiplier_percent: z.int(),
  }),
  z.object({
    kind: z.literal('price'),
    name: z.string(),
    days: z.array(z.enum(weekdays)),
    start: z.string(),
    end: z.string(),
    step_amount: z.int(),
  }),
])

export const RateSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    lot_id: z.string(),
    zone_id: z.string().nullable(),
    vehicle_type: z.string().nullable(),
    currency: z.string(),
    rate_type: z.enum(rateTypes),
    amount: z.int(),
    step_minutes: z.int(),
    grace_period_minutes: z.int(),
    daily_max: z.int().nullable(),
    lost_ticket_fee: z.int(),
    bands: z.array(bandOut),
    effective_from: z.iso.datetime(),
    effective_to: z.iso.datetime().nullable(),
    is_active: z.boolean(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .openapi('Rate')

export const RateListSchema = pageSchema(RateSchema, 'RateList')

export const RateListQuery = PageQuerySchema.extend({
  lot_id: id.optional(),
  active: z
    .enum(['true', 'false'])
    .optional()
    .openapi({ description: 'true: active plans only; false: deactivated ones only; left out: both.' }),
})

export const RateIdParamSchema = z.object({
  id: id.openapi({ param: { name: 'id', in: 'path' } }),
})

export const IdempotencyHeaderSchema = idempotencyHeader(
  'Makes a retry of this create safe: the same key and body answer the first one’s rate.',
)

export const QuoteInputSchema = z
  .strictObject({
    lot_id: id,
    zone_id: id.optional(),
    vehicle_type: vehicleTypeCode.default('standard'),
    entry_time: instant,
    exit_time: instant.openapi({
      example: '2026-01-01T02:07:00Z',
      description: `After entry_time, at most ${MAX_QUOTE_DAYS} days later.`,
    }),
    lost_ticket: z.boolean().default(false),
  })
  .openapi('QuoteInput')

export const FeeLineSchema = z
  .object({
    kind: z.enum([
      'grace',
      'parking',
      'peak',
      'daily_cap',
      'flat',
      'daily',
      'lost_ticket',
      'discount',
      'validation',
      'membership',
      'reservation',
      'ev_charging',
      'ev_idle',
      'no_tariff',
    ]),
    description: z.string().openapi({ example: 'Parking (3 hour(s) @ 5.00 USD/hr)' }),
    amount: z.int().openapi({ description: 'Minor units; negative for reductions.', example: 1500 }),
  })
  .openapi('FeeLine')

export const FeeQuoteSchema = z
  .object({
    currency: z.string().openapi({ example: 'USD' }),
    duration_minutes: z.int().openapi({ description: 'Started minutes of the stay.', example: 127 }),
    base_fee: z.int().openapi({ description: 'Before reductions, lost-ticket fee included.', example: 1500 }),
    discounts: z.int().openapi({ description: 'The sum of the reductions, positive.', example: 0 }),
    charges: z.int().optional().openapi({
      description: 'Billed with the parking fee and never reduced: EV energy and idle fees.',
      example: 313,
    }),
    tax: z.int().openapi({ description: 'Prices include tax; not itemised (0).', example: 0 }),
    total: z.int().openapi({ example: 1500 }),
    breakdown: z.array(FeeLineSchema),
    tariff_id: z.string().nullable(),
    tariff_name: z.string().nullable(),
  })
  .openapi('FeeQuote')
