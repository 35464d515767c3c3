import { access, defineRoute } from '../../http/access.ts'
import { jsonBody, jsonResponse, PageQuerySchema, problemResponses } from '../../http/openapi.ts'
import {
  AdjustmentSchema,
  DiscountCheckResultSchema,
  DiscountCheckSchema,
  DiscountCreateSchema,
  DiscountIdParamSchema,
  DiscountListQuerySchema,
  DiscountListSchema,
  DiscountSchema,
  DiscountUpdateSchema,
  RedeemSchema,
  SessionIdParamSchema,
  ValidationCreateSchema,
  ValidationListSchema,
  ValidationSchema,
} from './discounts.schemas.ts'

const tags = ['Discounts']
const staff = access.roles('operator', 'admin')
const bodyProblems = ['UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'] as const

export const listDiscounts = defineRoute(staff, {
  method: 'get',
  path: '/api/v1/discounts',
  operationId: 'listDiscounts',
  summary: 'List discount codes by code',
  tags,
  request: { query: DiscountListQuerySchema },
  responses: {
    200: jsonResponse(DiscountListSchema, 'A page of discount codes'),
    ...problemResponses('VALIDATION_FAILED', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const createDiscount = defineRoute(access.roles('admin'), {
  method: 'post',
  path: '/api/v1/discounts',
  operationId: 'createDiscount',
  summary: 'Create a discount code',
  description:
    'Codes are case-insensitive and stored in uppercase: a code that exists in any spelling is a 409. `valid_to` must be after `valid_from` (400 naming `valid_to`).',
  tags,
  request: { body: jsonBody(DiscountCreateSchema) },
  responses: {
    201: jsonResponse(DiscountSchema, 'The discount code'),
    ...problemResponses(
      'VALIDATION_FAILED',
      'NOT_FOUND',
      'CONFLICT',
      'DEPENDENCY_UNAVAILABLE',
      ...bodyProblems,
    ),
  },
})

// Registered before the `{id}` routes; only POST is defined on both paths' shape anyway.
export const checkDiscount = defineRoute(access.public, {
  method: 'post',
  path: '/api/v1/discounts/validate',
  operationId: 'validateDiscount',
  summary: 'Check whether a discount code can be used, and why not',
  description:
    'Counts nothing. With `session_id`, checks the code for that session (its facility, currency and customer); with `lot_id`, at that facility. An unknown session is a 404.',
  tags,
  request: { body: jsonBody(DiscountCheckSchema) },
  responses: {
    200: jsonResponse(DiscountCheckResultSchema, 'Whether the code is valid, with the reason when not'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE', ...bodyProblems),
  },
})

export const getDiscount = defineRoute(staff, {
  method: 'get',
  path: '/api/v1/discounts/{id}',
  operationId: 'getDiscount',
  summary: 'One discount code, with its uses',
  tags,
  request: { params: DiscountIdParamSchema },
  responses: {
    200: jsonResponse(DiscountSchema, 'The discount code'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const replaceDiscount = defineRoute(access.roles('admin'), {
  method: 'put',
  path: '/api/v1/discounts/{id}',
  operationId: 'replaceDiscount',
  summary: "Replace a discount code's terms",
  description: 'Uses counted so far stay; sessions that redeemed the code keep what they were granted.',
  tags,
  request: { params: DiscountIdParamSchema, body: jsonBody(DiscountUpdateSchema) },
  responses: {
    200: jsonResponse(DiscountSchema, 'The discount code'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE', ...bodyProblems),
  },
})

export const deactivateDiscount = defineRoute(access.roles('admin'), {
  method: 'delete',
  path: '/api/v1/discounts/{id}',
  operationId: 'deactivateDiscount',
  summary: 'Deactivate a discount code',
  description: 'The code stays (redemptions refer to it) and can be reactivated with a PUT.',
  tags,
  request: { params: DiscountIdParamSchema },
  responses: {
    204: { description: 'Deactivated' },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const redeemDiscount = defineRoute(access.roles('customer', 'operator', 'admin'), {
  method: 'post',
  path: '/api/v1/sessions/{id}/discount',
  operationId: 'redeemDiscount',
  summary: 'Redeem a discount code for a parking session',
  description:
    "The session's customer, or staff; another customer's session is a 404. Once per code per session: the same code again answers the same adjustment and counts no use. A code that cannot be used is a 422 with `reason` (expired, not_yet_valid, limit_reached, inactive, wrong_lot, wrong_currency, already_used_by_you); a closed session is a 409.",
  tags,
  request: { params: SessionIdParamSchema, body: jsonBody(RedeemSchema) },
  responses: {
    200: jsonResponse(AdjustmentSchema, 'What the code takes off the fee'),
    ...problemResponses(
      'VALIDATION_FAILED',
      'NOT_FOUND',
      'CONFLICT',
      'UNPROCESSABLE',
      'DEPENDENCY_UNAVAILABLE',
      ...bodyProblems,
    ),
  },
})

export const createValidation = defineRoute(staff, {
  method: 'post',
  path: '/api/v1/sessions/{id}/validations',
  operationId: 'createPartnerValidation',
  summary: "Record a merchant's validation of a parking session",
  description:
    'One per merchant per session (merchant names compare case- and space-insensitively): the same body again answers the record with 200, another body from that merchant is a 409. The session must be active (409 otherwise).',
  tags,
  request: { params: SessionIdParamSchema, body: jsonBody(ValidationCreateSchema) },
  responses: {
    200: jsonResponse(ValidationSchema, 'The validation, recorded before'),
    201: jsonResponse(ValidationSchema, 'The validation'),
    ...problemResponses(
      'VALIDATION_FAILED',
      'NOT_FOUND',
      'CONFLICT',
      'DEPENDENCY_UNAVAILABLE',
      ...bodyProblems,
    ),
  },
})

export const listValidations = defineRoute(access.roles('customer', 'operator', 'admin'), {
  method: 'get',
  path: '/api/v1/sessions/{id}/validations',
  operationId: 'listPartnerValidations',
  summary: "A parking session's merchant validations",
  description: "The session's customer, or staff; another customer's session is a 404.",
  tags,
  request: { params: SessionIdParamSchema, query: PageQuerySchema },
  responses: {
    200: jsonResponse(ValidationListSchema, 'A page of validations, by merchant'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'DEPENDENCY_UNAVAILABLE'),
  },
})
