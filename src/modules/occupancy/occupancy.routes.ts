import { z } from '@hono/zod-openapi'
import { access, defineRoute } from '../../http/access.ts'
import { jsonResponse, problemResponses } from '../../http/openapi.ts'
import {
  DeadLetterListSchema,
  DeadLetterQuerySchema,
  FeedQuerySchema,
  FreeSpacesQuerySchema,
  FreeSpacesSchema,
  HistoryPageSchema,
  HistoryQuerySchema,
  LevelAvailabilitySchema,
  LotAvailabilitySchema,
  ScopeIdParamSchema,
  SpaceLiveStatePageSchema,
  SpaceLiveStateQuerySchema,
  SpaceStateSchema,
  ZoneAvailabilitySchema,
} from './occupancy.schemas.ts'

const tags = ['Occupancy']
const fromRedis = 'Read from the hot state in Redis, never from MongoDB.'

const availability = (scope: 'lot' | 'level' | 'zone', schema: z.ZodType) =>
  defineRoute(access.public, {
    method: 'get',
    path: `/api/v1/${scope}s/{id}/availability`,
    operationId: `get${scope[0]?.toUpperCase()}${scope.slice(1)}Availability`,
    summary: `Availability of a ${scope}: total, available, occupied, unknown, reserved, maintenance`,
    description: `${fromRedis} Public, for apps, maps and signs.`,
    tags,
    request: { params: ScopeIdParamSchema },
    responses: {
      200: jsonResponse(schema, `The ${scope}'s counts`),
      ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
    },
  })

export const lotAvailability = availability('lot', LotAvailabilitySchema)
export const levelAvailability = availability('level', LevelAvailabilitySchema)
export const zoneAvailability = availability('zone', ZoneAvailabilitySchema)

export const freeSpaces = defineRoute(access.public, {
  method: 'get',
  path: '/api/v1/spaces/available',
  operationId: 'findAvailableSpaces',
  summary: 'Find free spaces, by lot, level, zone and type',
  description: `${fromRedis} A space is available when its sensor says free and no operator overlay is on it.`,
  tags,
  request: { query: FreeSpacesQuerySchema },
  responses: {
    200: jsonResponse(FreeSpacesSchema, 'The matching free spaces'),
    ...problemResponses('VALIDATION_FAILED', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const spaceState = defineRoute(access.public, {
  method: 'get',
  path: '/api/v1/spaces/{id}/state',
  operationId: 'getSpaceState',
  summary: "A space's current state: sensed, overlay, and the status that counts",
  description: fromRedis,
  tags,
  request: { params: ScopeIdParamSchema },
  responses: {
    200: jsonResponse(SpaceStateSchema, 'The space state'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const lotSpaceStates = defineRoute(access.roles('operator', 'admin'), {
  method: 'get',
  path: '/api/v1/lots/{id}/spaces/states',
  operationId: 'listLotSpaceStates',
  summary: "A lot's spaces with their live state and their sensor's health, a page at a time",
  description: [
    "For a console's map: up to 500 spaces a page, in the registry's order (oldest first), each with",
    'its state as `GET /spaces/{id}/state` answers it and its bound sensor’s battery, signal, last',
    'contact and staleness. The states come from the hot state in Redis; follow the lot’s feed',
    '(`/lots/{id}/feed` or `/live`) for the changes after the read.',
  ].join(' '),
  tags,
  request: { params: ScopeIdParamSchema, query: SpaceLiveStateQuerySchema },
  responses: {
    200: jsonResponse(SpaceLiveStatePageSchema, 'A page of spaces'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const spaceHistory = defineRoute(access.roles('operator', 'admin'), {
  method: 'get',
  path: '/api/v1/spaces/{id}/history',
  operationId: 'getSpaceHistory',
  summary: "A space's changes over a time range, oldest first",
  description:
    'From MongoDB, written by the persister shortly after each change (see `persister_lag_seconds`). The range applies to when a change was recorded.',
  tags,
  request: { params: ScopeIdParamSchema, query: HistoryQuerySchema },
  responses: {
    200: jsonResponse(HistoryPageSchema, 'A page of changes'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const lotFeed = defineRoute(access.public, {
  method: 'get',
  path: '/api/v1/lots/{id}/feed',
  operationId: 'followLot',
  summary: "A lot's changes as they happen (Server-Sent Events)",
  description: [
    "A `text/event-stream` that stays open: first an `availability` event with the lot's counts,",
    'then a `change` event per space change (its `id` is the resume point; its `kind` says how to count it, see SpaceHistoryEntry), and `reset` when changes',
    'after the given id were trimmed away (re-read the availability). Once the snapshot, or on a resume',
    'everything missed, has been sent, one `caught_up` event follows (its `id` is the last one sent):',
    'what comes after it is live. Reconnect with the',
    '`Last-Event-ID` header (browsers do it by themselves) or `?since=` to resume without a gap.',
    'The same feed over WebSocket: `GET /api/v1/lots/{id}/live` with an Upgrade header; messages are',
    'JSON `{"type": "availability" | "change" | "reset" | "caught_up", ...}`.',
  ].join(' '),
  tags,
  request: { params: ScopeIdParamSchema, query: FeedQuerySchema },
  responses: {
    200: {
      description: 'The event stream',
      content: { 'text/event-stream': { schema: z.string() } },
    },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const deadLetters = defineRoute(access.roles('operator', 'admin'), {
  method: 'get',
  path: '/api/v1/ingest/dead-letters',
  operationId: 'listDeadLetters',
  summary: 'The latest sensor messages the pipeline refused, newest first, with the reason',
  tags,
  request: { query: DeadLetterQuerySchema },
  responses: {
    200: jsonResponse(DeadLetterListSchema, 'Dead letters'),
    ...problemResponses('VALIDATION_FAILED', 'DEPENDENCY_UNAVAILABLE'),
  },
})
