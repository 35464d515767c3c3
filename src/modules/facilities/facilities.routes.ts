import { access, defineRoute } from '../../http/access.ts'
import { jsonBody, jsonResponse, problemResponses } from '../../http/openapi.ts'
import {
  IdempotencyHeaderSchema,
  IdParamSchema,
  LevelCreateSchema,
  LevelListQuery,
  LevelListSchema,
  LevelSchema,
  LevelUpdateSchema,
  LotInputSchema,
  LotListQuery,
  LotListSchema,
  LotSchema,
  OverlayInputSchema,
  SpaceBulkResultSchema,
  SpaceBulkSchema,
  SpaceInputSchema,
  SpaceListQuery,
  SpaceListSchema,
  SpaceSchema,
  ZoneCreateSchema,
  ZoneListQuery,
  ZoneListSchema,
  ZoneSchema,
  ZoneUpdateSchema,
} from './facilities.schemas.ts'

// Paths under /lots/{id}/, /levels/{id}/, /zones/{id}/ and /spaces/ other than these (availability,
// state, history, feed, /spaces/available) belong to the occupancy capability.

const tags = ['Facilities']
const readers = access.anyAccount
const admins = access.roles('admin')
const bodyProblems = ['VALIDATION_FAILED', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'] as const
const keyed =
  'Send an `Idempotency-Key` header to make a retry safe: the same key and body answer the resource the first request created; the same key with another body is a 422.'

// Lots

export const listLots = defineRoute(readers, {
  method: 'get',
  path: '/api/v1/lots',
  operationId: 'listLots',
  summary: 'List parking lots, oldest first',
  tags,
  request: { query: LotListQuery },
  responses: {
    200: jsonResponse(LotListSchema, 'A page of lots'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const createLot = defineRoute(admins, {
  method: 'post',
  path: '/api/v1/lots',
  operationId: 'createLot',
  summary: 'Create a parking lot',
  description: `The time zone must be one the platform knows (an IANA name). ${keyed}`,
  tags,
  request: { headers: IdempotencyHeaderSchema, body: jsonBody(LotInputSchema) },
  responses: {
    201: jsonResponse(LotSchema, 'The lot'),
    ...problemResponses(...bodyProblems, 'CONFLICT', 'UNPROCESSABLE'),
  },
})

export const getLot = defineRoute(readers, {
  method: 'get',
  path: '/api/v1/lots/{id}',
  operationId: 'getLot',
  summary: 'One parking lot',
  tags,
  request: { params: IdParamSchema },
  responses: {
    200: jsonResponse(LotSchema, 'The lot'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const replaceLot = defineRoute(admins, {
  method: 'put',
  path: '/api/v1/lots/{id}',
  operationId: 'replaceLot',
  summary: "Replace a parking lot's details",
  tags,
  request: { params: IdParamSchema, body: jsonBody(LotInputSchema) },
  responses: {
    200: jsonResponse(LotSchema, 'The lot'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND'),
  },
})

export const deleteLot = defineRoute(admins, {
  method: 'delete',
  path: '/api/v1/lots/{id}',
  operationId: 'deleteLot',
  summary: 'Delete a parking lot without levels',
  description: 'A lot that still has levels is a 409.',
  tags,
  request: { params: IdParamSchema },
  responses: {
    204: { description: 'Deleted' },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT'),
  },
})

// Levels

export const listLevels = defineRoute(readers, {
  method: 'get',
  path: '/api/v1/levels',
  operationId: 'listLevels',
  summary: 'List levels in floor order, optionally of one lot',
  tags,
  request: { query: LevelListQuery },
  responses: {
    200: jsonResponse(LevelListSchema, 'A page of levels'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const createLevel = defineRoute(admins, {
  method: 'post',
  path: '/api/v1/levels',
  operationId: 'createLevel',
  summary: 'Create a level in a lot',
  description: keyed,
  tags,
  request: { headers: IdempotencyHeaderSchema, body: jsonBody(LevelCreateSchema) },
  responses: {
    201: jsonResponse(LevelSchema, 'The level'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE'),
  },
})

export const getLevel = defineRoute(readers, {
  method: 'get',
  path: '/api/v1/levels/{id}',
  operationId: 'getLevel',
  summary: 'One level',
  tags,
  request: { params: IdParamSchema },
  responses: {
    200: jsonResponse(LevelSchema, 'The level'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const updateLevel = defineRoute(admins, {
  method: 'put',
  path: '/api/v1/levels/{id}',
  operationId: 'updateLevel',
  summary: "Replace a level's name and floor",
  tags,
  request: { params: IdParamSchema, body: jsonBody(LevelUpdateSchema) },
  responses: {
    200: jsonResponse(LevelSchema, 'The level'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND'),
  },
})

export const deleteLevel = defineRoute(admins, {
  method: 'delete',
  path: '/api/v1/levels/{id}',
  operationId: 'deleteLevel',
  summary: 'Delete a level without zones',
  description: 'A level that still has zones is a 409.',
  tags,
  request: { params: IdParamSchema },
  responses: {
    204: { description: 'Deleted' },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT'),
  },
})

// Zones

export const listZones = defineRoute(readers, {
  method: 'get',
  path: '/api/v1/zones',
  operationId: 'listZones',
  summary: 'List zones, optionally of one level or lot',
  tags,
  request: { query: ZoneListQuery },
  responses: {
    200: jsonResponse(ZoneListSchema, 'A page of zones'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const createZone = defineRoute(admins, {
  method: 'post',
  path: '/api/v1/zones',
  operationId: 'createZone',
  summary: 'Create a zone on a level',
  description: keyed,
  tags,
  request: { headers: IdempotencyHeaderSchema, body: jsonBody(ZoneCreateSchema) },
  responses: {
    201: jsonResponse(ZoneSchema, 'The zone'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE'),
  },
})

export const getZone = defineRoute(readers, {
  method: 'get',
  path: '/api/v1/zones/{id}',
  operationId: 'getZone',
  summary: 'One zone',
  tags,
  request: { params: IdParamSchema },
  responses: {
    200: jsonResponse(ZoneSchema, 'The zone'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const updateZone = defineRoute(admins, {
  method: 'put',
  path: '/api/v1/zones/{id}',
  operationId: 'updateZone',
  summary: "Replace a zone's name and description",
  tags,
  request: { params: IdParamSchema, body: jsonBody(ZoneUpdateSchema) },
  responses: {
    200: jsonResponse(ZoneSchema, 'The zone'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND'),
  },
})

export const deleteZone = defineRoute(admins, {
  method: 'delete',
  path: '/api/v1/zones/{id}',
  operationId: 'deleteZone',
  summary: 'Delete a zone without spaces',
  description: 'A zone that still has spaces is a 409.',
  tags,
  request: { params: IdParamSchema },
  responses: {
    204: { description: 'Deleted' },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT'),
  },
})

// Spaces

export const listSpaces = defineRoute(readers, {
  method: 'get',
  path: '/api/v1/spaces',
  operationId: 'listSpaces',
  summary: 'List spaces, with filters',
  description:
    'Oldest first (spaces made in bulk in number order). Their sensed state is the occupancy capability’s.',
  tags,
  request: { query: SpaceListQuery },
  responses: {
    200: jsonResponse(SpaceListSchema, 'A page of spaces'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const createSpace = defineRoute(admins, {
  method: 'post',
  path: '/api/v1/spaces',
  operationId: 'createSpace',
  summary: 'Create a parking space in a zone',
  description: `A number is unique in its lot, whatever its case: another space with it is a 409. ${keyed}`,
  tags,
  request: { headers: IdempotencyHeaderSchema, body: jsonBody(SpaceInputSchema) },
  responses: {
    201: jsonResponse(SpaceSchema, 'The space'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const createSpacesInBulk = defineRoute(admins, {
  method: 'post',
  path: '/api/v1/spaces/bulk',
  operationId: 'createSpacesInBulk',
  summary: 'Create numbered spaces in a zone',
  description:
    'Makes `prefix` + `from`..`to` (zero-padded to `pad` digits), at most 2,000 per call. Numbers that exist already in the lot are skipped and listed, so the same call again is harmless.',
  tags,
  request: { body: jsonBody(SpaceBulkSchema) },
  responses: {
    201: jsonResponse(SpaceBulkResultSchema, 'How many were created, and which numbers were skipped'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const getSpace = defineRoute(readers, {
  method: 'get',
  path: '/api/v1/spaces/{id}',
  operationId: 'getSpace',
  summary: 'One parking space',
  tags,
  request: { params: IdParamSchema },
  responses: {
    200: jsonResponse(SpaceSchema, 'The space'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const replaceSpace = defineRoute(admins, {
  method: 'put',
  path: '/api/v1/spaces/{id}',
  operationId: 'replaceSpace',
  summary: "Replace a space's zone, number, type and flags",
  description: 'Another zone_id moves the space (its level and lot follow). The overlay stays.',
  tags,
  request: { params: IdParamSchema, body: jsonBody(SpaceInputSchema) },
  responses: {
    200: jsonResponse(SpaceSchema, 'The space'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const deleteSpace = defineRoute(admins, {
  method: 'delete',
  path: '/api/v1/spaces/{id}',
  operationId: 'deleteSpace',
  summary: 'Delete a parking space; its number becomes free',
  tags,
  request: { params: IdParamSchema },
  responses: {
    204: { description: 'Deleted' },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const setSpaceOverlay = defineRoute(access.roles('operator', 'admin'), {
  method: 'put',
  path: '/api/v1/spaces/{id}/overlay',
  operationId: 'setSpaceOverlay',
  summary: 'Set or clear the operator overlay of a space',
  description:
    '`reserved`, `maintenance` or `closed` lies over what the sensor says until cleared with null.',
  tags,
  request: { params: IdParamSchema, body: jsonBody(OverlayInputSchema) },
  responses: {
    200: jsonResponse(SpaceSchema, 'The space'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})
