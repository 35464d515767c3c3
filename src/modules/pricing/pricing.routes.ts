import { access, defineRoute } from '../../http/access.ts'
import { jsonBody, jsonResponse, problemResponses } from '../../http/openapi.ts'
import {
  FeeQuoteSchema,
  IdempotencyHeaderSchema,
  QuoteInputSchema,
  RateIdParamSchema,
  RateInputSchema,
  RateListQuery,
  RateListSchema,
  RateSchema,
} from './pricing.schemas.ts'

const tags = ['Rates']
const admins = access.roles('admin')
const bodyProblems = ['VALIDATION_FAILED', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'] as const
const inForce =
  "The plan in force at a stay's entry prices the whole stay: sessions keep a snapshot of it, so later edits change only later stays."

export const listRates = defineRoute(access.anyAccount, {
  method: 'get',
  path: '/api/v1/rates',
  operationId: 'listRates',
  summary: 'List rate plans, oldest first',
  tags,
  request: { query: RateListQuery },
  responses: {
    200: jsonResponse(RateListSchema, 'A page of rate plans'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const createRate = defineRoute(admins, {
  method: 'post',
  path: '/api/v1/rates',
  operationId: 'createRate',
  summary: 'Create a rate plan for a lot',
  description: `The lot and zone must exist (404 otherwise), the zone must be in the lot, and the currency is the lot's. When several plans are in force at an entry, vehicle_type + zone beats vehicle_type beats zone beats a generic plan; within one level the latest effective_from wins. ${inForce} Send an \`Idempotency-Key\` header to make a retry safe.`,
  tags,
  request: { headers: IdempotencyHeaderSchema, body: jsonBody(RateInputSchema) },
  responses: {
    201: jsonResponse(RateSchema, 'The rate plan'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE'),
  },
})

// Registered before the `{id}` routes; the handlers also route `{id}` to uuid-shaped segments only.
export const quoteStay = defineRoute(access.public, {
  method: 'post',
  path: '/api/v1/rates/quote',
  operationId: 'quoteStay',
  summary: 'What a stay would cost',
  description: `Prices a hypothetical stay with the plan in force at entry_time for the lot, zone and vehicle type, with an itemised breakdown. No plan in force: free, with one \`no_tariff\` line. ${inForce}`,
  tags,
  request: { body: jsonBody(QuoteInputSchema) },
  responses: {
    200: jsonResponse(FeeQuoteSchema, 'The fee, itemised'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND'),
  },
})

export const getRate = defineRoute(access.anyAccount, {
  method: 'get',
  path: '/api/v1/rates/{id}',
  operationId: 'getRate',
  summary: 'One rate plan',
  tags,
  request: { params: RateIdParamSchema },
  responses: {
    200: jsonResponse(RateSchema, 'The rate plan'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const replaceRate = defineRoute(admins, {
  method: 'put',
  path: '/api/v1/rates/{id}',
  operationId: 'replaceRate',
  summary: 'Replace a rate plan',
  description: `A full replacement; effective_from left out stays as it was. ${inForce}`,
  tags,
  request: { params: RateIdParamSchema, body: jsonBody(RateInputSchema) },
  responses: {
    200: jsonResponse(RateSchema, 'The rate plan'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'UNPROCESSABLE'),
  },
})

export const deactivateRate = defineRoute(admins, {
  method: 'delete',
  path: '/api/v1/rates/{id}',
  operationId: 'deactivateRate',
  summary: 'Deactivate a rate plan',
  description:
    'The plan stays readable (is_active false) and is never picked again; stays that entered under it keep it.',
  tags,
  request: { params: RateIdParamSchema },
  responses: {
    204: { description: 'Deactivated' },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})
