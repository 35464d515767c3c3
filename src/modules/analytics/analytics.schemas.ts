import { z } from '@hono/zod-openapi'

const instant = z.iso.datetime({ offset: true })
const date = z
  .string()
  .regex(/^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])$/, 'a date YYYY-MM-DD')
  .openapi({ example: '2026-10-25' })

export const OccupancyQuerySchema = z.object({
  lot_id: z.uuid().optional().openapi({ description: 'One lot; all lots when left out.' }),
})

const StatSchema = z.object({
  total: z.int(),
  occupied: z.int(),
  available: z.int(),
  reserved: z.int(),
  unknown: z.int(),
  out_of_service: z.int().openapi({ description: 'Under maintenance or closed.' }),
  occupancy_rate: z.number().openapi({ example: 42.5, description: 'occupied / total, in percent.' }),
})

export const OccupancyStatsSchema = z
  .object({
    as_of: z.string(),
    data: z.array(
      StatSchema.extend({
        lot_id: z.string(),
        name: z.string(),
        levels: z.array(StatSchema.extend({ level_id: z.string(), name: z.string(), floor: z.int() })),
        zones: z.array(StatSchema.extend({ zone_id: z.string(), level_id: z.string(), name: z.string() })),
      }),
    ),
  })
  .openapi('OccupancyStats')

export const TrendsQuerySchema = z.object({
  lot_id: z.uuid().optional().openapi({ description: 'The lot (or give zone_id).' }),
  zone_id: z.uuid().optional().openapi({ description: 'The zone (or give lot_id).' }),
  from: instant
    .optional()
    .openapi({ description: 'Start (default: 7 days before `to`).', example: '2026-10-24T00:00:00Z' }),
  to: instant
    .optional()
    .openapi({ description: 'End, excluded (default: now).', example: '2026-10-26T00:00:00Z' }),
  granularity: z.enum(['hour', 'day']).default('hour').openapi({
    description: "hour: UTC hours; day: calendar days in the lot's time zone.",
  }),
})

export const TrendsSchema = z
  .object({
    scope_kind: z.enum(['lot', 'zone']),
    scope_id: z.string(),
    granularity: z.enum(['hour', 'day']),
    time_zone: z.string(),
    from: z.string(),
    to: z.string(),
    data: z.array(
      z.object({
        period: z
          .string()
          .openapi({ example: '2026-10-25', description: 'The hour (instant) or the local date.' }),
        start: z.string(),
        occupancy: z
          .number()
          .openapi({ example: 0.4312, description: 'Time-weighted share of spaces occupied, 0..1.' }),
        reserved: z.number().openapi({ description: 'Time-weighted share of spaces reserved, 0..1.' }),
        peak_occupancy: z.number().openapi({ description: 'The highest 15-minute occupancy in the period.' }),
        space_hours: z.number(),
        occupied_hours: z.number(),
      }),
    ),
  })
  .openapi('OccupancyTrends')

export const DayRangeQuerySchema = z.object({
  from: date.optional().openapi({ description: 'First local date (default: 30 days before `to`).' }),
  to: date.optional().openapi({ description: 'Last local date, included (default: today, UTC).' }),
  lot_id: z.uuid().optional().openapi({ description: 'One lot; all lots when left out.' }),
})

export const RevenueSchema = z
  .object({
    from: z.string(),
    to: z.string(),
    data: z.array(
      z.object({
        date: z.string(),
        lot_id: z.string(),
        method: z.string().openapi({ example: 'card' }),
        currency: z.string().openapi({ example: 'EUR' }),
        amount: z.int().openapi({ description: 'Taken, minor units.' }),
        refunded: z.int().openapi({ description: 'Refunded that day, minor units.' }),
        net: z.int(),
        payments: z.int(),
      }),
    ),
    totals: z.array(
      z.object({ currency: z.string(), amount: z.int(), refunded: z.int(), net: z.int(), payments: z.int() }),
    ),
  })
  .openapi('RevenueReport')

export const StaysSchema = z
  .object({
    from: z.string(),
    to: z.string(),
    dates: z.int(),
    stays: z.int().openapi({ description: 'Sessions closed in the range.' }),
    data: z.array(
      z.object({
        date: z.string(),
        lot_id: z.string(),
        entries: z.int(),
        exits: z.int(),
        average_stay_minutes: z.number().nullable(),
        spaces: z.int(),
        turnover: z.number().nullable().openapi({ description: 'Sessions closed per space that day.' }),
      }),
    ),
  })
  .openapi('StaysReport')
