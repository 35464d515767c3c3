import { access, defineRoute } from '../../http/access.ts'
import { jsonBody, jsonResponse, problemResponses } from '../../http/openapi.ts'
import {
  ChargeListQuerySchema,
  ChargeListSchema,
  ChargeSchema,
  IdParamSchema,
  StartInputSchema,
  StationInputSchema,
  StationListQuerySchema,
  StationListSchema,
  StationSchema,
  StopSchema,
} from './ev.schemas.ts'

const tags = ['EV charging']
const drivers = access.roles('customer', 'operator', 'admin')
const bodyProblems = ['VALIDATION_FAILED', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'] as const

export const listStations = defineRoute(access.anyAccount, {
  method: 'get',
  path: '/api/v1/ev-stations',
  operationId: 'listEvStations',
  summary: 'List charging stations with their live status',
  description:
    '`available_only=true` keeps the stations whose live status is `available`; `charger_type` in any case.',
  tags,
  request: { query: StationListQuerySchema },
  responses: {
    200: jsonResponse(StationListSchema, 'A page of stations, oldest first'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const createStation = defineRoute(access.roles('admin'), {
  method: 'post',
  path: '/api/v1/ev-stations',
  operationId: 'createEvStation',
  summary: 'Put a charging station on an EV space',
  description:
    'One station per space (409 `space_has_station`); the space must be of type EV (422 `not_ev_space`); a meter must be a sensor or charger bound to that space (422 `meter_not_bound`). Prices are minor units of the lot’s currency.',
  tags,
  request: { body: jsonBody(StationInputSchema) },
  responses: {
    201: jsonResponse(StationSchema, 'The station'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE'),
  },
})

export const getStation = defineRoute(access.anyAccount, {
  method: 'get',
  path: '/api/v1/ev-stations/{id}',
  operationId: 'getEvStation',
  summary: 'One charging station with its live status',
  tags,
  request: { params: IdParamSchema },
  responses: {
    200: jsonResponse(StationSchema, 'The station'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const replaceStation = defineRoute(access.roles('admin'), {
  method: 'put',
  path: '/api/v1/ev-stations/{id}',
  operationId: 'replaceEvStation',
  summary: 'Replace a charging station’s details, or set it out of service',
  description:
    'A running charge keeps the prices it started with. Moving the station to another space is refused while a charge runs (409 `station_busy`). A meter must be a sensor or charger bound to the station’s (new) space (422 `meter_not_bound`).',
  tags,
  request: { params: IdParamSchema, body: jsonBody(StationInputSchema) },
  responses: {
    200: jsonResponse(StationSchema, 'The station'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE'),
  },
})

export const startCharge = defineRoute(drivers, {
  method: 'post',
  path: '/api/v1/ev-charging/start',
  operationId: 'startEvCharging',
  summary: 'Start charging a parked vehicle',
  description:
    'The parking session’s owner, or staff. The session must be active (422 `session_not_active`) and on the station’s space (422 `wrong_space`: an operator can assign the space with POST /api/v1/sessions/{id}/assign-space); `vehicle_id`, when given, must be its vehicle (422 `wrong_vehicle`). A station out of service answers 409 `station_unavailable`, one charging another vehicle 409 `station_busy`, a session with a charge running 409 `already_charging`. Energy comes from the station’s meter when it has one that has reported, else it is estimated (`energy_source`).',
  tags,
  request: { body: jsonBody(StartInputSchema) },
  responses: {
    201: jsonResponse(ChargeSchema, 'The charging session'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE'),
  },
})

export const listCharges = defineRoute(drivers, {
  method: 'get',
  path: '/api/v1/ev-charging/sessions',
  operationId: 'listEvChargingSessions',
  summary: 'List charging sessions',
  description: 'Customers see their own; operators and admins every one.',
  tags,
  request: { query: ChargeListQuerySchema },
  responses: {
    200: jsonResponse(ChargeListSchema, 'A page of charging sessions, oldest first'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const getCharge = defineRoute(drivers, {
  method: 'get',
  path: '/api/v1/ev-charging/{id}',
  operationId: 'getEvChargingSession',
  summary: 'One charging session, with its energy and cost so far while it runs',
  description: 'Customers see their own; another’s is a 404.',
  tags,
  request: { params: IdParamSchema },
  responses: {
    200: jsonResponse(ChargeSchema, 'The charging session'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const stopCharge = defineRoute(drivers, {
  method: 'post',
  path: '/api/v1/ev-charging/{id}/stop',
  operationId: 'stopEvCharging',
  summary: 'Stop a charge: its energy and cost',
  description:
    'The owner or staff; another’s is a 404. Stopping twice answers the same. The cost is billed with the parking fee (an `ev_charging` line), and while the vehicle stays on the space after its grace, an idle fee per minute (`ev_idle`).',
  tags,
  request: { params: IdParamSchema },
  responses: {
    200: jsonResponse(StopSchema, 'The completed charging session'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})
