import { access, defineRoute } from '../../http/access.ts'
import { jsonBody, jsonResponse, problemResponses } from '../../http/openapi.ts'
import {
  AvailabilityQuerySchema,
  AvailabilitySchema,
  CheckInSchema,
  ConfirmationParamSchema,
  GateCheckInSchema,
  ReservationCreatedSchema,
  ReservationCreateSchema,
  ReservationIdempotencyHeaderSchema,
  ReservationIdParamSchema,
  ReservationListQuerySchema,
  ReservationListSchema,
  ReservationPaySchema,
  ReservationSchema,
  ReservationUpdateSchema,
} from './reservations.schemas.ts'

const tags = ['Reservations']
const everyone = access.roles('customer', 'operator', 'admin')
const staff = access.roles('operator', 'admin')
const bodyProblems = ['VALIDATION_FAILED', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'] as const

export const availability = defineRoute(everyone, {
  method: 'get',
  path: '/api/v1/reservations/availability',
  operationId: 'reservationAvailability',
  summary: 'Spaces free to book for a time window',
  description:
    'By lot or zone (one of them is required), optionally by space type: total, available, reserved and unavailable spaces, per type, and the first free ones. A space is not available when an open reservation overlaps the window or its overlay is maintenance or closed. A window that ends before it starts, starts in the past or lasts longer than RESERVATION_MAX_HOURS is a 422 with the field and reason.',
  tags,
  request: { query: AvailabilityQuerySchema },
  responses: {
    200: jsonResponse(AvailabilitySchema, 'Availability for the window'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'UNPROCESSABLE'),
  },
})

export const createReservation = defineRoute(everyone, {
  method: 'post',
  path: '/api/v1/reservations',
  operationId: 'createReservation',
  summary: 'Book a space for a time window',
  description:
    'Customers book for their own vehicle (`vehicle_id`, or the `license_plate` of an unregistered or own vehicle); operators and admins for any plate. Give a `space_id`, or a `zone_id` or `lot_id` for the first free space of the type. No double booking: every slot of the window is claimed once (409 `slot_taken` for a booked space, `no_space_available` when none is free). `prepay`: the tariff in force at the start prices the window and a Stripe PaymentIntent is made (`payment`); the reservation is `pending_payment` until `POST /reservations/{id}/pay` or the webhook, and expires unpaid after RESERVATION_PAYMENT_TIMEOUT_MINUTES. Send an `Idempotency-Key` to make a retry safe.',
  tags,
  request: { headers: ReservationIdempotencyHeaderSchema, body: jsonBody(ReservationCreateSchema) },
  responses: {
    201: jsonResponse(ReservationCreatedSchema, 'The reservation and its confirmation number'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const listReservations = defineRoute(everyone, {
  method: 'get',
  path: '/api/v1/reservations',
  operationId: 'listReservations',
  summary: 'List reservations, oldest first',
  description: 'Customers see their own; operators and admins every one, filtered by lot and status.',
  tags,
  request: { query: ReservationListQuerySchema },
  responses: {
    200: jsonResponse(ReservationListSchema, 'A page of reservations'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const findByConfirmation = defineRoute(everyone, {
  method: 'get',
  path: '/api/v1/reservations/confirmation/{code}',
  operationId: 'findReservationByConfirmation',
  summary: 'Find a reservation by its confirmation number (any letter case)',
  description: "Customers find their own only; another's is a 404.",
  tags,
  request: { params: ConfirmationParamSchema },
  responses: {
    200: jsonResponse(ReservationSchema, 'The reservation'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const gateCheckIn = defineRoute(staff, {
  method: 'post',
  path: '/api/v1/reservations/check-in',
  operationId: 'checkInReservationAtGate',
  summary: 'Check in at the gate by confirmation number or plate',
  description:
    'Starts the parking session on the reserved space (another of the zone when a car is on it). Allowed from RESERVATION_CHECKIN_EARLY_MINUTES before the start to RESERVATION_NO_SHOW_GRACE_MINUTES after it: 422 `too_early` (with `opens_at`) or `too_late`. Cancelled, expired or no-show: 409 with the status; an unpaid prepaid reservation: 402.',
  tags,
  request: { body: jsonBody(GateCheckInSchema) },
  responses: {
    201: jsonResponse(CheckInSchema, 'The session, its ticket and space, and the reservation'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE', 'PAYMENT_REQUIRED'),
  },
})

export const getReservation = defineRoute(everyone, {
  method: 'get',
  path: '/api/v1/reservations/{id}',
  operationId: 'getReservation',
  summary: 'One reservation',
  description: "Customers see their own only; another's is a 404.",
  tags,
  request: { params: ReservationIdParamSchema },
  responses: {
    200: jsonResponse(ReservationSchema, 'The reservation'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const updateReservation = defineRoute(everyone, {
  method: 'put',
  path: '/api/v1/reservations/{id}',
  operationId: 'updateReservation',
  summary: 'Change the window, vehicle or special requests, before check-in',
  description:
    'A new window claims its new slots on the same space first and lets go of the old ones after: a conflict is a 409 `slot_taken` and changes nothing. The window of a paid prepaid reservation is fixed (422 `prepaid`).',
  tags,
  request: { params: ReservationIdParamSchema, body: jsonBody(ReservationUpdateSchema) },
  responses: {
    200: jsonResponse(ReservationSchema, 'The reservation'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE'),
  },
})

export const cancelReservation = defineRoute(everyone, {
  method: 'delete',
  path: '/api/v1/reservations/{id}',
  operationId: 'cancelReservation',
  summary: 'Cancel a reservation; answers it with its refund',
  description:
    'A prepayment is refunded in full at least RESERVATION_FREE_CANCEL_HOURS before the start, RESERVATION_LATE_CANCEL_REFUND_PERCENT later but before the start, nothing after it. Cancelling again answers the cancelled reservation; a checked-in, no-show or expired one is a 409.',
  tags,
  request: { params: ReservationIdParamSchema },
  responses: {
    200: jsonResponse(ReservationSchema, 'The cancelled reservation'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const payReservation = defineRoute(everyone, {
  method: 'post',
  path: '/api/v1/reservations/{id}/pay',
  operationId: 'payReservation',
  summary: "Confirm a prepaid reservation's PaymentIntent",
  description:
    'Like POST /payments/confirm: a declined or unfinished payment is a 402; a paid one answers itself.',
  tags,
  request: { params: ReservationIdParamSchema, body: jsonBody(ReservationPaySchema) },
  responses: {
    200: jsonResponse(ReservationSchema, 'The reservation'),
    ...problemResponses(
      ...bodyProblems,
      'NOT_FOUND',
      'CONFLICT',
      'PAYMENT_REQUIRED',
      'UNPROCESSABLE',
      'DEPENDENCY_UNAVAILABLE',
    ),
  },
})

export const checkIn = defineRoute(everyone, {
  method: 'post',
  path: '/api/v1/reservations/{id}/check-in',
  operationId: 'checkInReservation',
  summary: 'Check in to a reservation',
  description:
    "Operators and admins check in any reservation, customers their own (another's is a 404). The window and answers are those of POST /reservations/check-in.",
  tags,
  request: { params: ReservationIdParamSchema },
  responses: {
    201: jsonResponse(CheckInSchema, 'The session, its ticket and space, and the reservation'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE', 'PAYMENT_REQUIRED'),
  },
})
