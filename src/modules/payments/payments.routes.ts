import { createRoute } from '@hono/zod-openapi'
import { access, defineRoute } from '../../http/access.ts'
import { jsonBody, jsonResponse, problemResponses } from '../../http/openapi.ts'
import {
  ConfirmSchema,
  ExitValidationSchema,
  IdempotencyHeaderSchema,
  IntentCreateSchema,
  IntentSchema,
  PaymentCreateSchema,
  PaymentIdParamSchema,
  PaymentListQuery,
  PaymentListSchema,
  PaymentSchema,
  ReceiptSchema,
  RefundCreateSchema,
  RefundSchema,
  ValidateExitSchema,
  WebhookAckSchema,
} from './payments.schemas.ts'

const tags = ['Payments']
const payers = access.roles('customer', 'operator', 'admin')
const staff = access.roles('operator', 'admin')
const bodyProblems = ['VALIDATION_FAILED', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'] as const

export const createPayment = defineRoute(payers, {
  method: 'post',
  path: '/api/v1/payments',
  operationId: 'createPayment',
  summary: 'Pay for a session',
  description:
    'Cash and card (terminal) payments are recorded by operators and admins; `mobile` starts a Stripe PaymentIntent (customers: for their own sessions). A session is settled by exactly one payment: a second one is a 409 with `amount_due`. An amount other than the due is a 422 with `amount_due`; nothing due is a 409 with `amount_due` 0. Send an `Idempotency-Key` to make a retry safe.',
  tags,
  request: { headers: IdempotencyHeaderSchema, body: jsonBody(PaymentCreateSchema) },
  responses: {
    201: jsonResponse(PaymentSchema, 'The payment'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const listPayments = defineRoute(payers, {
  method: 'get',
  path: '/api/v1/payments',
  operationId: 'listPayments',
  summary: 'List payments, oldest first',
  description: 'Customers see their own payments; operators and admins see all.',
  tags,
  request: { query: PaymentListQuery },
  responses: {
    200: jsonResponse(PaymentListSchema, 'A page of payments'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const validateExit = createRoute({
  method: 'post',
  path: '/api/v1/payments/validate-exit',
  operationId: 'validateExit',
  summary: 'May the car with this ticket leave now?',
  description:
    'Access: anyone (gates, kiosks). What the ticket owes and how long a paid session may still leave.',
  tags,
  security: [],
  request: { body: jsonBody(ValidateExitSchema) },
  responses: {
    200: jsonResponse(ExitValidationSchema, 'The exit validation'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND'),
  },
})

export const createIntent = defineRoute(payers, {
  method: 'post',
  path: '/api/v1/payments/create-intent',
  operationId: 'createPaymentIntent',
  summary: 'Start a Stripe payment of what a session owes',
  description:
    "The session's customer, or staff. One PaymentIntent per settlement and amount (a deterministic idempotency key): asking again answers the same intent.",
  tags,
  request: { body: jsonBody(IntentCreateSchema) },
  responses: {
    201: jsonResponse(IntentSchema, 'The payment intent and its pending payment'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const confirmPayment = defineRoute(payers, {
  method: 'post',
  path: '/api/v1/payments/confirm',
  operationId: 'confirmPayment',
  summary: 'Confirm a Stripe payment intent',
  description:
    'Settles the session when Stripe takes the money. A declined card is a 402; a session settled meanwhile by another payment is a 409.',
  tags,
  request: { body: jsonBody(ConfirmSchema) },
  responses: {
    200: jsonResponse(PaymentSchema, 'The payment'),
    ...problemResponses(
      ...bodyProblems,
      'PAYMENT_REQUIRED',
      'NOT_FOUND',
      'CONFLICT',
      'UNPROCESSABLE',
      'DEPENDENCY_UNAVAILABLE',
    ),
  },
})

export const getPayment = defineRoute(payers, {
  method: 'get',
  path: '/api/v1/payments/{id}',
  operationId: 'getPayment',
  summary: 'One payment',
  description: "Customers see their own; another's is a 404.",
  tags,
  request: { params: PaymentIdParamSchema },
  responses: {
    200: jsonResponse(PaymentSchema, 'The payment'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const getReceipt = defineRoute(payers, {
  method: 'get',
  path: '/api/v1/payments/{id}/receipt',
  operationId: 'getPaymentReceipt',
  summary: 'The receipt of a settled payment',
  description: "The payer, the session's customer, or staff. A payment not settled has none (409).",
  tags,
  request: { params: PaymentIdParamSchema },
  responses: {
    200: jsonResponse(ReceiptSchema, 'The receipt'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT'),
  },
})

export const createRefund = defineRoute(staff, {
  method: 'post',
  path: '/api/v1/payments/{id}/refunds',
  operationId: 'refundPayment',
  summary: 'Refund a payment in full or in part',
  description:
    'Full when `amount` is omitted; never more than what remains (422). Stripe payments are refunded at Stripe.',
  tags,
  request: { params: PaymentIdParamSchema, body: jsonBody(RefundCreateSchema) },
  responses: {
    201: jsonResponse(RefundSchema, 'The refund'),
    ...problemResponses(...bodyProblems, 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE', 'DEPENDENCY_UNAVAILABLE'),
  },
})

export const stripeWebhook = createRoute({
  method: 'post',
  path: '/api/v1/webhooks/stripe',
  operationId: 'stripeWebhook',
  summary: 'Stripe events',
  description:
    'Access: Stripe, by the `Stripe-Signature` header over the raw body (a Stripe Event object). A bad, missing or too old signature is a 400 and has no effect. Each event counts once, whatever the order and the repeats.',
  tags,
  security: [],
  responses: {
    200: jsonResponse(WebhookAckSchema, 'The event was taken'),
    ...problemResponses('VALIDATION_FAILED', 'PAYLOAD_TOO_LARGE', 'DEPENDENCY_UNAVAILABLE'),
  },
})
