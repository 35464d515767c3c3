import { access, defineRoute } from '../../http/access.ts'
import { jsonBody, jsonResponse, problemResponses } from '../../http/openapi.ts'
import {
  AddVehicleSchema,
  CancelSchema,
  IdempotencyHeaderSchema,
  IdParamSchema,
  MembershipListQuery,
  MembershipListSchema,
  MembershipSchema,
  PaySchema,
  PlanCreateSchema,
  PlanListQuery,
  PlanListSchema,
  PlanReplaceSchema,
  PlanSchema,
  RenewSchema,
  SubscribeSchema,
  UsageSchema,
  VehicleParamSchema,
} from './memberships.schemas.ts'

const tags = ['Memberships']
const members = access.roles('customer', 'operator', 'admin')
const bodyProblems = ['UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'] as const

export const listPlans = defineRoute(access.anyAccount, {
  method: 'get',
  path: '/api/v1/membership-plans',
  operationId: 'listMembershipPlans',
  summary: 'List membership plans, oldest first',
  description: 'Customers see active plans only; staff see all, and may filter by state.',
  tags,
  request: { query: PlanListQuery },
  responses: {
    200: jsonResponse(PlanListSchema, 'A page of plans'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const getPlan = defineRoute(access.anyAccount, {
  method: 'get',
  path: '/api/v1/membership-plans/{id}',
  operationId: 'getMembershipPlan',
  summary: 'One membership plan',
  description: 'An inactive plan is a 404 for customers.',
  tags,
  request: { params: IdParamSchema },
  responses: {
    200: jsonResponse(PlanSchema, 'The plan'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const createPlan = defineRoute(access.roles('admin'), {
  method: 'post',
  path: '/api/v1/membership-plans',
  operationId: 'createMembershipPlan',
  summary: 'Create a membership plan at a facility',
  description: "The price is in minor units of the lot's currency.",
  tags,
  request: { body: jsonBody(PlanCreateSchema) },
  responses: {
    201: jsonResponse(PlanSchema, 'The plan'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', ...bodyProblems),
  },
})

export const replacePlan = defineRoute(access.roles('admin'), {
  method: 'put',
  path: '/api/v1/membership-plans/{id}',
  operationId: 'replaceMembershipPlan',
  summary: "Replace a membership plan's terms",
  tags,
  request: { params: IdParamSchema, body: jsonBody(PlanReplaceSchema) },
  responses: {
    200: jsonResponse(PlanSchema, 'The plan'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', ...bodyProblems),
  },
})

export const subscribe = defineRoute(members, {
  method: 'post',
  path: '/api/v1/memberships',
  operationId: 'subscribeMembership',
  summary: 'Subscribe to a plan',
  description:
    'One membership per customer per facility (409 `already_member`). An inactive plan is a 422 `plan_inactive`; more vehicles than the plan allows a 422 `vehicle_limit`; a vehicle on another membership a 409 `vehicle_taken`. Customers pay through Stripe (status `pending_payment` until paid); staff may record cash or card-terminal payments, and subscribe a customer (`user_id`). Send an `Idempotency-Key` to make a retry safe.',
  tags,
  request: { headers: IdempotencyHeaderSchema, body: jsonBody(SubscribeSchema) },
  responses: {
    201: jsonResponse(MembershipSchema, 'The membership'),
    ...problemResponses(
      'VALIDATION_FAILED',
      'NOT_FOUND',
      'CONFLICT',
      'UNPROCESSABLE',
      'PAYMENT_REQUIRED',
      'DEPENDENCY_UNAVAILABLE',
      ...bodyProblems,
    ),
  },
})

export const listMemberships = defineRoute(members, {
  method: 'get',
  path: '/api/v1/memberships',
  operationId: 'listMemberships',
  summary: 'List memberships, oldest first',
  description: 'Customers see their own; staff see all, with filters.',
  tags,
  request: { query: MembershipListQuery },
  responses: {
    200: jsonResponse(MembershipListSchema, 'A page of memberships'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const getMembership = defineRoute(members, {
  method: 'get',
  path: '/api/v1/memberships/{id}',
  operationId: 'getMembership',
  summary: 'One membership, its periods and vehicles',
  description: "Another customer's membership is a 404.",
  tags,
  request: { params: IdParamSchema },
  responses: {
    200: jsonResponse(MembershipSchema, 'The membership'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const membershipUsage = defineRoute(members, {
  method: 'get',
  path: '/api/v1/memberships/{id}/usage',
  operationId: 'getMembershipUsage',
  summary: 'Usage of the current period: hours, sessions, savings',
  tags,
  request: { params: IdParamSchema },
  responses: {
    200: jsonResponse(UsageSchema, 'The usage'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const addVehicle = defineRoute(members, {
  method: 'post',
  path: '/api/v1/memberships/{id}/vehicles',
  operationId: 'addMembershipVehicle',
  summary: "Register one of the member's vehicles to the membership",
  description:
    'Within the vehicle limit (422 `vehicle_limit`), one membership per vehicle (409 `vehicle_taken`); adding a vehicle twice is the same as once.',
  tags,
  request: { params: IdParamSchema, body: jsonBody(AddVehicleSchema) },
  responses: {
    200: jsonResponse(MembershipSchema, 'The membership'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE', ...bodyProblems),
  },
})

export const removeVehicle = defineRoute(members, {
  method: 'delete',
  path: '/api/v1/memberships/{id}/vehicles/{vehicleId}',
  operationId: 'removeMembershipVehicle',
  summary: 'Take a vehicle off the membership',
  tags,
  request: { params: VehicleParamSchema },
  responses: {
    204: { description: 'Removed' },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const cancelMembership = defineRoute(members, {
  method: 'post',
  path: '/api/v1/memberships/{id}/cancel',
  operationId: 'cancelMembership',
  summary: 'Cancel: no renewal, it ends with its period, or now',
  description:
    'Send `{}` to end it at the end of the period. An ended membership is a 409 `membership_ended`.',
  tags,
  request: { params: IdParamSchema, body: jsonBody(CancelSchema) },
  responses: {
    200: jsonResponse(MembershipSchema, 'The membership'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT', ...bodyProblems),
  },
})

export const renewMembership = defineRoute(members, {
  method: 'post',
  path: '/api/v1/memberships/{id}/renew',
  operationId: 'renewMembership',
  summary: 'Renew: a new period after the current one',
  description:
    'Once per period: a second renewal is a 409 `already_renewed`; a canceled membership a 409 `canceled`, one not active a 409 `not_active`; a plan no longer offered a 422 `plan_inactive`. Paid as at subscription.',
  tags,
  request: { params: IdParamSchema, body: jsonBody(RenewSchema) },
  responses: {
    200: jsonResponse(MembershipSchema, 'The membership'),
    ...problemResponses(
      'VALIDATION_FAILED',
      'NOT_FOUND',
      'CONFLICT',
      'UNPROCESSABLE',
      'PAYMENT_REQUIRED',
      'DEPENDENCY_UNAVAILABLE',
      ...bodyProblems,
    ),
  },
})

export const payMembership = defineRoute(members, {
  method: 'post',
  path: '/api/v1/memberships/{id}/pay',
  operationId: 'payMembership',
  summary: 'Confirm the pending Stripe payment of the membership or its renewal',
  description:
    'Nothing pending is a 409 `nothing_due`; a declined card a 402 (try another). The payment method is saved for the automatic renewal.',
  tags,
  request: { params: IdParamSchema, body: jsonBody(PaySchema) },
  responses: {
    200: jsonResponse(MembershipSchema, 'The membership'),
    ...problemResponses(
      'VALIDATION_FAILED',
      'NOT_FOUND',
      'CONFLICT',
      'UNPROCESSABLE',
      'PAYMENT_REQUIRED',
      'DEPENDENCY_UNAVAILABLE',
      ...bodyProblems,
    ),
  },
})
