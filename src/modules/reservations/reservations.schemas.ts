import { z } from '@hono/zod-openapi'
import { idempotencyHeader, PageQuerySchema, pageSchema } from '../../http/openapi.ts'
import { spaceTypes } from '../occupancy/occupancy.contract.ts'
import { EntrySchema } from '../sessions/sessions.schemas.ts'
import { licensePlate } from '../vehicles/vehicles.schemas.ts'
import { reservationStatuses } from './reservations.model.ts'

// Every rule is a pattern or a bound (the API is fuzzed from its document); rules across fields
// (end after start, not in the past, the longest window) are 422s with the field and reason.

const instant = z.iso.datetime({ offset: true }).openapi({ example: '2030-01-20T09:00:00Z' })
const confirmationNumber = z
  .string()
  .regex(/^[Rr][Ss][Vv]-[A-Za-z0-9]{8}$/, 'a confirmation number: RSV- and 8 letters and digits')
  .openapi({ example: 'RSV-A2B3C4D5' })

export const ReservationSchema = z
  .object({
    id: z.string(),
    confirmation_number: z.string().openapi({ example: 'RSV-A2B3C4D5' }),
    status: z.enum(reservationStatuses),
    user_id: z.string().nullable().openapi({ description: 'The customer the reservation belongs to.' }),
    lot_id: z.string(),
    level_id: z.string(),
    zone_id: z.string(),
    space_id: z.string(),
    space_number: z.string(),
    space_type: z.enum(spaceTypes),
    vehicle_id: z.string().nullable(),
    license_plate: z.string(),
    vehicle_type: z.string(),
    start_time: z.iso.datetime(),
    end_time: z.iso.datetime(),
    special_requests: z.string().nullable(),
    prepaid: z.boolean(),
    amount: z
      .int()
      .nullable()
      .openapi({ description: 'The prepaid price in minor units (null: not prepaid).' }),
    currency: z.string(),
    payment_status: z.enum(['not_required', 'pending', 'paid', 'refunded']),
    payment_intent_id: z.string().nullable(),
    paid_at: z.iso.datetime().nullable(),
    check_in_opens_at: z.iso.datetime(),
    check_in_closes_at: z.iso.datetime(),
    session_id: z.string().nullable(),
    checked_in_at: z.iso.datetime().nullable(),
    cancelled_at: z.iso.datetime().nullable(),
    refund: z
      .object({
        amount: z.int(),
        currency: z.string(),
        status: z.enum(['succeeded', 'pending', 'refused']).openapi({
          description:
            'pending: asked at Stripe, answer not in yet; refused: Stripe refused it (failure_reason), tried again later a few times.',
        }),
        refund_id: z.string().nullable(),
        failure_reason: z.string().nullable(),
      })
      .nullable(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .openapi('Reservation')

export const ReservationCreateSchema = z
  .strictObject({
    vehicle_id: z.uuid().optional().openapi({ description: "One of the caller's vehicles." }),
    license_plate: licensePlate.optional(),
    lot_id: z.uuid().optional(),
    zone_id: z.uuid().optional(),
    space_id: z
      .uuid()
      .optional()
      .openapi({ description: 'A specific space; else the first free of the zone or lot.' }),
    space_type: z.enum(spaceTypes).optional(),
    start_time: instant,
    end_time: instant.openapi({ example: '2030-01-20T17:00:00Z' }),
    special_requests: z.string().max(500).optional().openapi({ example: 'Near elevator please' }),
    prepay: z
      .boolean()
      .default(false)
      .openapi({ description: 'Pay the tariff for the window now, through Stripe.' }),
  })
  .openapi('ReservationCreate')

export const ReservationIdempotencyHeaderSchema = idempotencyHeader(
  'Makes a retried booking safe: the same key and body answer the reservation the first one made; the same key with another body is a 422.',
)

export const ReservationCreatedSchema = z
  .object({
    reservation: ReservationSchema,
    confirmation_number: z.string().openapi({ example: 'RSV-A2B3C4D5' }),
    payment: z
      .object({
        payment_intent_id: z.string(),
        client_secret: z.string().nullable(),
        amount: z.int(),
        currency: z.string(),
      })
      .nullable()
      .openapi({ description: 'The Stripe PaymentIntent to pay, for a prepaid reservation with a price.' }),
  })
  .openapi('ReservationCreated')

export const ReservationUpdateSchema = z
  .strictObject({
    start_time: instant.optional(),
    end_time: instant.optional(),
    vehicle_id: z.uuid().optional(),
    license_plate: licensePlate.optional(),
    special_requests: z.string().max(500).nullable().optional(),
  })
  .openapi('ReservationUpdate')

export const ReservationPaySchema = z
  .strictObject({
    payment_method: z
      .string()
      .regex(/^pm_[A-Za-z0-9_]{1,200}$/)
      .optional()
      .openapi({ example: 'pm_card_visa' }),
  })
  .openapi('ReservationPay')

export const GateCheckInSchema = z
  .strictObject({
    confirmation_number: confirmationNumber.optional(),
    license_plate: licensePlate.optional(),
    lot_id: z.uuid().optional(),
  })
  .openapi('ReservationGateCheckIn')

export const CheckInSchema = EntrySchema.extend({ reservation: ReservationSchema }).openapi(
  'ReservationCheckIn',
)

export const ReservationListSchema = pageSchema(ReservationSchema, 'ReservationList')

export const ReservationListQuerySchema = PageQuerySchema.extend({
  lot_id: z.uuid().optional(),
  status: z.enum(reservationStatuses).optional(),
})

export const AvailabilityQuerySchema = z.object({
  start_time: instant,
  end_time: instant.openapi({ example: '2030-01-20T17:00:00Z' }),
  lot_id: z.uuid().optional(),
  zone_id: z.uuid().optional(),
  space_type: z.enum(spaceTypes).optional(),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(50)
    .default(10)
    .openapi({ description: 'How many free spaces to list.' }),
})

const countsShape = {
  total: z.int(),
  available: z.int(),
  reserved: z.int(),
  unavailable: z.int().openapi({ description: 'Under maintenance or closed.' }),
}

export const AvailabilitySchema = z
  .object({
    lot_id: z.string(),
    zone_id: z.string().nullable(),
    start_time: z.iso.datetime(),
    end_time: z.iso.datetime(),
    ...countsShape,
    by_type: z.array(z.object({ space_type: z.enum(spaceTypes), ...countsShape })),
    spaces: z
      .array(
        z.object({
          id: z.string(),
          space_number: z.string(),
          type: z.enum(spaceTypes),
          zone_id: z.string(),
          level_id: z.string(),
        }),
      )
      .openapi({ description: 'The first spaces free for the whole window, by number.' }),
  })
  .openapi('ReservationAvailability')

export const ReservationIdParamSchema = z.object({
  id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }),
})

export const ConfirmationParamSchema = z.object({
  code: confirmationNumber.openapi({ param: { name: 'code', in: 'path' } }),
})
