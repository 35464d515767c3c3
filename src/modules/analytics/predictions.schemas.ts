import { z } from '@hono/zod-openapi'

// Every rule is a bound or a pattern, so that the OpenAPI document states exactly what is accepted.

export const PredictionQuerySchema = z.object({
  lot_id: z
    .uuid()
    .optional()
    .openapi({ description: 'The lot to forecast. One of `lot_id` and `zone_id` is needed.' }),
  zone_id: z.uuid().optional().openapi({
    description: 'The zone to forecast; with `lot_id` too, it must be a zone of that lot.',
  }),
  horizon_minutes: z.coerce
    .number()
    .int()
    .min(15)
    .max(60)
    .multipleOf(15)
    .default(60)
    .openapi({ description: 'How far ahead the 15-minute points go.', example: 60 }),
})

const basis = z.enum(['weekday_time_of_day', 'time_of_day', 'last_value']).openapi({
  description:
    'What the point stands on: the same weekday and time of day in past weeks; the time of day over all days (that weekday was never seen); or the last value (that time of day was never seen).',
})
const occupancy = z
  .number()
  .min(0)
  .max(1)
  .openapi({ description: 'Share of spaces occupied, 0..1.', example: 0.62 })

export const PredictionPointSchema = z
  .object({
    at: z.iso.datetime(),
    minutes_ahead: z.int().openapi({ example: 15 }),
    occupancy,
    expected_occupied: z.int().openapi({ description: 'occupancy x total spaces, rounded.' }),
    expected_free: z.int(),
    basis,
  })
  .openapi('PredictionPoint')

export const HourlyPredictionSchema = z
  .object({
    at: z.iso.datetime().openapi({ description: 'The start of the local hour.' }),
    hour: z.int().min(0).max(23).openapi({ description: 'The local hour of day.' }),
    occupancy,
    expected_occupied: z.int(),
    basis,
  })
  .openapi('HourlyPrediction')

export const PredictionSchema = z
  .object({
    scope: z.object({ kind: z.enum(['lot', 'zone']), id: z.string() }),
    lot_id: z.string(),
    time_zone: z.string().openapi({ example: 'Europe/Berlin' }),
    model: z.string().openapi({ example: 'weekday_profile_trend_v1' }),
    generated_at: z.iso.datetime(),
    history_from: z.iso.datetime().openapi({ description: 'The start of the history window read.' }),
    history_days: z.int().openapi({
      description: 'Local days of the window that had rollups: what the profile was learnt from.',
      example: 28,
    }),
    decay_per_step: z.number().min(0).max(1).openapi({
      description:
        "How much of today's gap to the usual occupancy is left after each 15 minutes (fitted on the history).",
      example: 0.93,
    }),
    total_spaces: z.int(),
    current: z.object({ at: z.iso.datetime(), occupancy, occupied: z.int() }),
    step_minutes: z.int().openapi({ example: 15 }),
    horizon_minutes: z.int().openapi({ example: 60 }),
    points: z
      .array(PredictionPointSchema)
      .openapi({ description: 'Now, then every 15 minutes up to the horizon.' }),
    next_day: z.object({
      date: z.iso.date().openapi({ description: "Tomorrow in the lot's time zone." }),
      points: z.array(HourlyPredictionSchema).openapi({
        description: 'Each local hour of tomorrow (23 or 25 on a daylight-saving change).',
      }),
    }),
  })
  .openapi('OccupancyPrediction')

export type PredictionQuery = z.infer<typeof PredictionQuerySchema>
export type PredictionDto = z.infer<typeof PredictionSchema>
