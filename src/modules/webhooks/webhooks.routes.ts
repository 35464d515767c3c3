import { access, defineRoute } from '../../http/access.ts'
import { jsonBody, jsonResponse, PageQuerySchema, pageSchema, problemResponses } from '../../http/openapi.ts'
import {
  DeliveryDetailSchema,
  DeliveryIdParamSchema,
  DeliveryQuerySchema,
  DeliverySchema,
  EventTypeListSchema,
  IdempotencyHeaderSchema,
  SubscriptionCreateSchema,
  SubscriptionDetailSchema,
  SubscriptionIdParamSchema,
  SubscriptionPatchSchema,
  SubscriptionSchema,
  SubscriptionWithSecretSchema,
} from './webhooks.schemas.ts'

const tags = ['Webhooks']
const admins = access.roles('admin')
const base = '/api/v1/webhooks'

export const listWebhookEventTypes = defineRoute(admins, {
  method: 'get',
  path: `${base}/event-types`,
  operationId: 'listWebhookEventTypes',
  summary: 'The event types a webhook subscription may ask for',
  tags,
  responses: {
    200: jsonResponse(EventTypeListSchema, 'Every event type, with a line about it'),
    ...problemResponses(),
  },
})

export const createWebhookSubscription = defineRoute(admins, {
  method: 'post',
  path: `${base}/subscriptions`,
  operationId: 'createWebhookSubscription',
  summary: 'Subscribe an endpoint to events',
  description:
    'The answer carries the signing secret, shown only here and on rotation. Field rules across fields (threshold_free_spaces with lot.availability_threshold_crossed, which also needs lot_id; the URL scheme and host the deployment allows) are 400s naming the field; an unknown lot_id is a 404. Send an `Idempotency-Key` to make a retry safe: the retry answers the same subscription and secret.',
  tags,
  request: { headers: IdempotencyHeaderSchema, body: jsonBody(SubscriptionCreateSchema) },
  responses: {
    201: jsonResponse(SubscriptionWithSecretSchema, 'The subscription, with its signing secret'),
    ...problemResponses(
      'VALIDATION_FAILED',
      'NOT_FOUND',
      'CONFLICT',
      'UNPROCESSABLE',
      'UNSUPPORTED_MEDIA_TYPE',
      'PAYLOAD_TOO_LARGE',
    ),
  },
})

export const listWebhookSubscriptions = defineRoute(admins, {
  method: 'get',
  path: `${base}/subscriptions`,
  operationId: 'listWebhookSubscriptions',
  summary: 'Webhook subscriptions, oldest first',
  tags,
  request: { query: PageQuerySchema },
  responses: {
    200: jsonResponse(pageSchema(SubscriptionSchema, 'WebhookSubscriptionPage'), 'A page of subscriptions'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const getWebhookSubscription = defineRoute(admins, {
  method: 'get',
  path: `${base}/subscriptions/{id}`,
  operationId: 'getWebhookSubscription',
  summary: 'A webhook subscription and its current failure streak',
  tags,
  request: { params: SubscriptionIdParamSchema },
  responses: {
    200: jsonResponse(SubscriptionDetailSchema, 'The subscription (never its secret)'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const updateWebhookSubscription = defineRoute(admins, {
  method: 'patch',
  path: `${base}/subscriptions/{id}`,
  operationId: 'updateWebhookSubscription',
  summary: 'Change a webhook subscription; enabled: true re-enables it',
  description:
    'Only the fields sent change; the rules of creation apply to the result. Re-enabling clears the failure streak and sends the deliveries held while it was disabled.',
  tags,
  request: { params: SubscriptionIdParamSchema, body: jsonBody(SubscriptionPatchSchema) },
  responses: {
    200: jsonResponse(SubscriptionDetailSchema, 'The subscription'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'),
  },
})

export const deleteWebhookSubscription = defineRoute(admins, {
  method: 'delete',
  path: `${base}/subscriptions/{id}`,
  operationId: 'deleteWebhookSubscription',
  summary: 'Delete a webhook subscription',
  description:
    'Its pending deliveries are failed when next due; its delivery log stays readable through GET /webhooks/deliveries/{id}.',
  tags,
  request: { params: SubscriptionIdParamSchema },
  responses: {
    204: { description: 'Deleted' },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const enableWebhookSubscription = defineRoute(admins, {
  method: 'post',
  path: `${base}/subscriptions/{id}/enable`,
  operationId: 'enableWebhookSubscription',
  summary: 'Re-enable a webhook subscription (after an auto-disable)',
  description:
    'The failure streak starts over and the deliveries held while it was disabled go out. Enabling an enabled subscription changes nothing.',
  tags,
  request: { params: SubscriptionIdParamSchema },
  responses: {
    200: jsonResponse(SubscriptionDetailSchema, 'The subscription'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const rotateWebhookSecret = defineRoute(admins, {
  method: 'post',
  path: `${base}/subscriptions/{id}/rotate-secret`,
  operationId: 'rotateWebhookSecret',
  summary: "Replace a subscription's signing secret",
  description:
    'The answer carries the new secret (shown only here). The previous one keeps signing alongside it (a second v1= in Webhook-Signature) for WEBHOOK_SECRET_OVERLAP_SECONDS, so that receivers can switch without losing events.',
  tags,
  request: { params: SubscriptionIdParamSchema },
  responses: {
    200: jsonResponse(SubscriptionWithSecretSchema, 'The subscription, with its new signing secret'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const sendWebhookTest = defineRoute(admins, {
  method: 'post',
  path: `${base}/subscriptions/{id}/test`,
  operationId: 'sendWebhookTest',
  summary: 'Send a webhook.test event to a subscription',
  description:
    'Through the queue like any event, signed, retried and logged: the answer is its delivery (follow it with GET /webhooks/deliveries/{id}). webhook.test is not subscribable. A disabled subscription is a 409. Send an `Idempotency-Key` to make a retry safe.',
  tags,
  request: { headers: IdempotencyHeaderSchema, params: SubscriptionIdParamSchema },
  responses: {
    202: jsonResponse(DeliverySchema, 'The test delivery, queued'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE'),
  },
})

export const listWebhookDeliveries = defineRoute(admins, {
  method: 'get',
  path: `${base}/subscriptions/{id}/deliveries`,
  operationId: 'listWebhookDeliveries',
  summary: "A subscription's deliveries, newest first",
  tags,
  request: { params: SubscriptionIdParamSchema, query: DeliveryQuerySchema },
  responses: {
    200: jsonResponse(pageSchema(DeliverySchema, 'WebhookDeliveryPage'), 'A page of deliveries'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const getWebhookDelivery = defineRoute(admins, {
  method: 'get',
  path: `${base}/deliveries/{id}`,
  operationId: 'getWebhookDelivery',
  summary: 'A delivery with its event and every attempt',
  tags,
  request: { params: DeliveryIdParamSchema },
  responses: {
    200: jsonResponse(DeliveryDetailSchema, 'The delivery'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const replayWebhookDelivery = defineRoute(admins, {
  method: 'post',
  path: `${base}/deliveries/{id}/replay`,
  operationId: 'replayWebhookDelivery',
  summary: 'Send a delivery’s event again',
  description:
    'The same event (same id, same body) to the same subscription, as a new delivery with its own attempts and retries. A disabled (or deleted) subscription is a 409: enable it first. Send an `Idempotency-Key` to make a retry safe: without one, each request is another replay.',
  tags,
  request: { headers: IdempotencyHeaderSchema, params: DeliveryIdParamSchema },
  responses: {
    202: jsonResponse(DeliverySchema, 'The new delivery, queued'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT', 'UNPROCESSABLE'),
  },
})
