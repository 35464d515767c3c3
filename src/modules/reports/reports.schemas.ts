import { z } from '@hono/zod-openapi'

export const DashboardQuerySchema = z.object({
  lot_id: z
    .uuid()
    .optional()
    .openapi({ description: 'One lot; all lots when left out.', param: { name: 'lot_id', in: 'query' } }),
})

const MoneySchema = z
  .object({
    amount: z.int().openapi({ example: 125050, description: 'Minor units.' }),
    currency: z.string().openapi({ example: 'EUR' }),
  })
  .openapi('Money')

export const DashboardSchema = z
  .object({
    total_spaces: z.int().openapi({ example: 200 }),
    occupied_spaces: z
      .int()
      .openapi({ example: 85, description: 'Sensed occupied, or held by a parking session.' }),
    available_spaces: z.int().openapi({ example: 110 }),
    reserved_spaces: z
      .int()
      .openapi({ example: 5, description: 'Held for a reservation whose check-in is open.' }),
    occupancy_rate: z
      .number()
      .openapi({ example: 42.5, description: 'occupied_spaces / total_spaces, in percent.' }),
    active_sessions: z.int().openapi({ example: 85 }),
    today_entries: z.int().openapi({ example: 156 }),
    today_exits: z.int().openapi({ example: 142 }),
    today_revenue: z.array(MoneySchema).openapi({
      description:
        "Money taken today net of today's refunds, one line per currency (lots may differ), in minor units.",
    }),
    active_ev_charging: z.int().openapi({ example: 8 }),
    pending_reservations: z.int().openapi({
      example: 12,
      description: 'Reservations awaiting payment or check-in that have not ended.',
    }),
    date: z.string().nullable().openapi({
      example: '2026-10-25',
      description:
        'The local "today" of the lot(s); null when the lots are in time zones on different dates.',
    }),
    time_zone: z.string().nullable().openapi({
      example: 'Europe/Berlin',
      description: "The lots' IANA time zone; null when they differ (each lot's today is its own).",
    }),
    lots: z.int().openapi({ example: 1, description: 'How many lots the figures cover.' }),
    as_of: z.string().openapi({ example: '2026-10-25T14:03:00.000Z' }),
  })
  .openapi('Dashboard')

export type Dashboard = z.infer<typeof DashboardSchema>
