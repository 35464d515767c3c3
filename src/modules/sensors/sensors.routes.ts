import { createRoute } from '@hono/zod-openapi'
import type { MiddlewareHandler } from 'hono'
import { access, defineRoute } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import { jsonBody, jsonResponse, problemResponses } from '../../http/openapi.ts'
import {
  DeviceCreateSchema,
  DeviceIdParamSchema,
  DeviceListQuerySchema,
  DeviceListSchema,
  DeviceReplaceSchema,
  DeviceSchema,
  DeviceWithCredentialsSchema,
  IngestBodySchema,
  IngestOutcomeSchema,
  SensorHealthSummarySchema,
} from './sensors.schemas.ts'

const tags = ['Sensors']
const staff = access.roles('operator', 'admin')
const admins = access.roles('admin')
const bodyProblems = ['VALIDATION_FAILED', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'] as const

export const listDevices = defineRoute(staff, {
  method: 'get',
  path: '/api/v1/devices',
  operationId: 'listDevices',
  summary: 'List sensors and gateways by id, with their health',
  tags,
  request: { query: DeviceListQuerySchema },
  responses: {
    200: jsonResponse(DeviceListSchema, 'A page of devices'),
    ...problemResponses('VALIDATION_FAILED', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const createDevice = defineRoute(admins, {
  method: 'post',
  path: '/api/v1/devices',
  operationId: 'createDevice',
  summary: 'Register a sensor or a gateway and issue its credentials',
  description:
    'The `id` is chosen by the admin and cannot be reused (409). The answer carries the credentials once: a sensor gets its MQTT username, password, client id and topics; a gateway an id and secret for HTTP Basic on POST /api/v1/ingest/readings. A sensor may be bound to a free space at once (409 when the space has a device).',
  tags,
  request: { body: jsonBody(DeviceCreateSchema) },
  responses: {
    201: jsonResponse(DeviceWithCredentialsSchema, 'The device and its credentials'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'DEPENDENCY_UNAVAILABLE'),
  },
})

// Registered before the `{id}` routes; its path has another first segment anyway.
export const sensorHealth = defineRoute(staff, {
  method: 'get',
  path: '/api/v1/sensors/health',
  operationId: 'getSensorHealth',
  summary: "The sensor fleet's health: counts, and the first 100 sensors with a problem",
  tags,
  responses: {
    200: jsonResponse(SensorHealthSummarySchema, 'The summary'),
    ...problemResponses('DEPENDENCY_UNAVAILABLE'),
  },
})

export const getDevice = defineRoute(staff, {
  method: 'get',
  path: '/api/v1/devices/{id}',
  operationId: 'getDevice',
  summary: 'One device, with its health',
  tags,
  request: { params: DeviceIdParamSchema },
  responses: {
    200: jsonResponse(DeviceSchema, 'The device'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const replaceDevice = defineRoute(admins, {
  method: 'put',
  path: '/api/v1/devices/{id}',
  operationId: 'replaceDevice',
  summary: "Change a device's space binding, model and firmware",
  description:
    'A space that has another device is a 409; the space left behind is free again. A new binding starts the space at unknown until the sensor reports.',
  tags,
  request: { params: DeviceIdParamSchema, body: jsonBody(DeviceReplaceSchema) },
  responses: {
    200: jsonResponse(DeviceSchema, 'The device'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const deleteDevice = defineRoute(admins, {
  method: 'delete',
  path: '/api/v1/devices/{id}',
  operationId: 'deleteDevice',
  summary: 'Remove a device; a connected sensor is disconnected at once and its space freed',
  tags,
  request: { params: DeviceIdParamSchema },
  responses: {
    204: { description: 'Deleted' },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const rotateDeviceCredentials = defineRoute(admins, {
  method: 'post',
  path: '/api/v1/devices/{id}/credentials',
  operationId: 'rotateDeviceCredentials',
  summary: 'Issue a new secret; the old one stops working',
  description:
    'The new credentials are shown once. A connected sensor is disconnected and must reconnect with the new password; HTTP Basic takes the old secret for at most 30 s more on other instances.',
  tags,
  request: { params: DeviceIdParamSchema },
  responses: {
    200: jsonResponse(DeviceWithCredentialsSchema, 'The device and its new credentials'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})

/** HTTP Basic with a device id and its secret; runs before input validation, like the bearer guard. */
const deviceGuard: MiddlewareHandler<AppEnv> = async (c, next) => {
  c.set('device', await c.var.services.sensors.authenticate(c.req.header('authorization')))
  await next()
}

const ingestRoute = defineRoute(access.public, {
  method: 'post',
  path: '/api/v1/ingest/readings',
  operationId: 'ingestReadings',
  summary: 'Send a batch of readings over HTTP (gateways, and sensors without MQTT)',
  description: [
    'The `basicAuth` scheme: a wrong or missing secret is a 401 with `WWW-Authenticate: Basic`.',
    "A gateway may send any device's readings; a sensor only its own (another device's reading refuses the whole batch with 403). 1 to 1000 readings as in the MQTT message contract; a reading without `occupied` is a heartbeat.",
    'The answer comes after the durable step: what was accepted, and what was a duplicate, stale or rejected (by index, with the reason).',
  ].join('\n\n'),
  tags,
  request: { body: jsonBody(IngestBodySchema) },
  responses: {
    202: jsonResponse(IngestOutcomeSchema, 'What the batch came to'),
    ...problemResponses(...bodyProblems, 'UNAUTHENTICATED', 'FORBIDDEN', 'DEPENDENCY_UNAVAILABLE'),
  },
})

/** The public rule's route, with the device's own security and guard in front of its checks. */
export const ingestReadings = createRoute({
  ...ingestRoute,
  description: ingestRoute.description.replace(
    /^Access: anyone\./,
    'Access: a device (HTTP Basic with its id and secret), not an account.',
  ),
  security: [{ basicAuth: [] }],
  middleware: [deviceGuard, ...((ingestRoute.middleware ?? []) as MiddlewareHandler<AppEnv>[])],
})
