import { access, defineRoute } from '../../http/access.ts'
import { jsonBody, jsonResponse, problemResponses } from '../../http/openapi.ts'
import {
  ActiveListQuerySchema,
  ActiveSessionListSchema,
  AssignSpaceSchema,
  EntryInputSchema,
  EntrySchema,
  ExitInputSchema,
  ExitSchema,
  SessionFeeSchema,
  SessionIdParamSchema,
  SessionListQuerySchema,
  SessionListSchema,
  SessionSchema,
  SpaceAssignmentSchema,
  TicketParamSchema,
  TicketViewSchema,
} from './sessions.schemas.ts'

const tags = ['Sessions']
const staff = access.roles('operator', 'admin')
const anyone = access.roles('customer', 'operator', 'admin')
const bodyProblems = ['VALIDATION_FAILED', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'] as const

export const enterVehicle = defineRoute(staff, {
  method: 'post',
  path: '/api/v1/sessions/entry',
  operationId: 'enterVehicle',
  summary: 'Process a vehicle entry: a session, a ticket and a space',
  description:
    'Allocates a free space of a type the vehicle may take (EV bays for EVs, accessible bays for permit holders, a motorcycle bay first for a motorcycle) atomically in the hot state: two cars never get one space, and the availability counts move at once. A plate has at most one active session (409 `already_parked`). A full lot answers 409 `lot_full` (or, with FULL_LOT_POLICY=admit_unassigned, admits the vehicle without a space). The rate plan in force at entry prices the whole stay. A plate read with `source: "lpr"` below LPR_MIN_CONFIDENCE answers 422 `low_confidence`.',
  tags,
  request: { body: jsonBody(EntryInputSchema) },
  responses: {
    201: jsonResponse(EntrySchema, 'The session, its ticket and its space'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const exitVehicle = defineRoute(staff, {
  method: 'post',
  path: '/api/v1/sessions/exit',
  operationId: 'exitVehicle',
  summary: 'Process a vehicle exit by ticket, or by plate when the ticket is lost',
  description:
    "Closes the session and frees its space when nothing is due: the fee is zero, paid (and the exit window after the payment still runs, or the fee has not grown since), or covered by validations and discounts. Otherwise 402 with `amount_due` and `currency`. `lost_ticket: true` (by plate) adds the tariff's lost-ticket fee. An exit is recorded once: a second one answers 409 `already_exited`.",
  tags,
  request: { body: jsonBody(ExitInputSchema) },
  responses: {
    200: jsonResponse(ExitSchema, 'The closed session and its fee'),
    ...problemResponses(
      ...bodyProblems,
      'PAYMENT_REQUIRED',
      'NOT_FOUND',
      'CONFLICT',
      'DEPENDENCY_UNAVAILABLE',
    ),
  },
})

export const listActiveSessions = defineRoute(staff, {
  method: 'get',
  path: '/api/v1/sessions/active',
  operationId: 'listActiveSessions',
  summary: 'List active sessions, each with its fee so far',
  description:
    'The fees of a page are priced in one batch in the worker pool; before reductions and payments.',
  tags,
  request: { query: ActiveListQuerySchema },
  responses: {
    200: jsonResponse(ActiveSessionListSchema, 'A page of active sessions, oldest first'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const listSessions = defineRoute(anyone, {
  method: 'get',
  path: '/api/v1/sessions',
  operationId: 'listSessions',
  summary: 'List sessions: a customer sees those of their vehicles',
  tags,
  request: { query: SessionListQuerySchema },
  responses: {
    200: jsonResponse(SessionListSchema, 'A page of sessions, oldest first'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const findSessionByTicket = defineRoute(access.public, {
  method: 'get',
  path: '/api/v1/sessions/ticket/{ticket}',
  operationId: 'findSessionByTicket',
  summary: 'Look a ticket up (a kiosk, the driver): a limited view',
  description: 'No plate and no owner: what anyone holding the ticket may see.',
  tags,
  request: { params: TicketParamSchema },
  responses: {
    200: jsonResponse(TicketViewSchema, 'The ticket'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const getSession = defineRoute(anyone, {
  method: 'get',
  path: '/api/v1/sessions/{id}',
  operationId: 'getSession',
  summary: 'Get a session',
  description: "A customer sees the sessions of their own vehicles only (anyone else's is a 404).",
  tags,
  request: { params: SessionIdParamSchema },
  responses: {
    200: jsonResponse(SessionSchema, 'The session'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const calculateSessionFee = defineRoute(anyone, {
  method: 'get',
  path: '/api/v1/sessions/{id}/calculate-fee',
  operationId: 'calculateSessionFee',
  summary: 'The fee of a session now, itemised, with what is paid and what is due',
  description:
    'Priced in the worker pool by the rate plan in force at entry. Within the exit window after a payment the fee stands as it was when paid.',
  tags,
  request: { params: SessionIdParamSchema },
  responses: {
    200: jsonResponse(SessionFeeSchema, 'The fee'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const assignSessionSpace = defineRoute(staff, {
  method: 'post',
  path: '/api/v1/sessions/{id}/assign-space',
  operationId: 'assignSessionSpace',
  summary: 'Assign a space to an active session by hand',
  description:
    'The space must be free or sensed unknown, without an overlay and without another session (409 `space_taken`); the session lets go of its previous space.',
  tags,
  request: { params: SessionIdParamSchema, body: jsonBody(AssignSpaceSchema) },
  responses: {
    200: jsonResponse(SpaceAssignmentSchema, 'The session and its new space'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE', 'DEPENDENCY_UNAVAILABLE'),
  },
})
