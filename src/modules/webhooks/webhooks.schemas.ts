import { z } from '@hono/zod-openapi'
import { idempotencyHeader, PageQuerySchema } from '../../http/openapi.ts'
import { webhookEventTypes, webhookTestEventType } from './webhooks.contract.ts'
import { deliveryStatuses } from './webhooks.model.ts'

export const IdempotencyHeaderSchema = idempotencyHeader(
  'Makes a retry safe: a second request with the same key (and body) answers what the first one made, without making another; the same key with another body is a 422.',
)

const eventType = z.enum(webhookEventTypes)
/** What a delivery may carry: the subscribable types and the admin's test event. */
const deliveredType = z.enum([...webhookEventTypes, webhookTestEventType])
const instant = z.iso.datetime()
// An absolute URL (format uri in the document, so that clients and fuzzers send one); its scheme and
// host are the deployment's rules, checked by the service.
const url = z.url().max(2048).openapi({
  example: 'https://example.com/hooks/parking',
  description:
    'The endpoint events are POSTed to: https (http and private hosts only where the deployment allows them; see WEBHOOK_ALLOW_HTTP and WEBHOOK_ALLOW_PRIVATE_HOSTS).',
})
const eventTypes = z
  .array(eventType)
  .min(1)
  .max(webhookEventTypes.length * 2)
  .openapi({ description: 'The event types to receive (GET /webhooks/event-types lists them).' })
const lotId = z.uuid().nullable().openapi({ description: 'Only events of this lot; null: every lot.' })
const threshold = z.int().min(0).max(1_000_000).nullable().openapi({
  description:
    'Required with (and only with) lot.availability_threshold_crossed: an event when the free spaces of `lot_id` go below it, and when they are back to at least it.',
})
const description = z.string().max(500).openapi({ example: 'Signage controller, level 1' })

export const SubscriptionCreateSchema = z
  .strictObject({
    url,
    event_types: eventTypes,
    lot_id: lotId.optional(),
    threshold_free_spaces: threshold.optional(),
    description: description.optional(),
    enabled: z.boolean().optional().openapi({ description: 'Default true.' }),
  })
  .openapi('WebhookSubscriptionCreate')

export const SubscriptionPatchSchema = z
  .strictObject({
    url: url.optional(),
    event_types: eventTypes.optional(),
    lot_id: lotId.optional(),
    threshold_free_spaces: threshold.optional(),
    description: description.optional(),
    enabled: z.boolean().optional().openapi({
      description:
        'true re-enables a disabled subscription (the failure streak starts over and its pending deliveries go out).',
    }),
  })
  .openapi('WebhookSubscriptionPatch')

export const SubscriptionSchema = z
  .object({
    id: z.uuid(),
    url: z.string(),
    event_types: z.array(eventType),
    lot_id: z.string().nullable(),
    threshold_free_spaces: z.int().nullable(),
    description: z.string(),
    enabled: z.boolean(),
    disabled_reason: z
      .string()
      .nullable()
      .openapi({ description: 'Why it is disabled: by an admin, persistent failure, or a 410 Gone.' }),
    disabled_at: instant.nullable(),
    previous_secret_expires_at: instant.nullable().openapi({
      description: 'After a rotation: until when the previous secret still signs (a second v1= signature).',
    }),
    created_at: instant,
    updated_at: instant,
  })
  .openapi('WebhookSubscription')

export const SubscriptionDetailSchema = SubscriptionSchema.extend({
  consecutive_failures: z.int().openapi({ description: 'Failed attempts since the last success.' }),
}).openapi('WebhookSubscriptionDetail')

export const SubscriptionWithSecretSchema = SubscriptionSchema.extend({
  secret: z.string().openapi({
    example: 'whsec_0Qm1gKq3b3cV2iYyP8n3oZr4xTqkYcS2hW6uJ7rP9aE',
    description: 'The signing secret. Shown only here (on create and on rotation): store it.',
  }),
}).openapi('WebhookSubscriptionWithSecret')

export const SubscriptionIdParamSchema = z.object({
  id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }),
})

export const DeliveryIdParamSchema = z.object({
  id: z
    .string()
    .regex(/^whd_[0-9a-f]{32}$/)
    .openapi({ param: { name: 'id', in: 'path' }, example: 'whd_019a3c5e7f10b1d2c3e4f5a6b7c8d9e0' }),
})

export const DeliveryQuerySchema = PageQuerySchema.extend({
  status: z.enum(deliveryStatuses).optional(),
})

export const EventTypeSchema = z
  .object({ type: eventType, description: z.string() })
  .openapi('WebhookEventType')

export const EventTypeListSchema = z
  .object({ data: z.array(EventTypeSchema) })
  .openapi('WebhookEventTypeList')

export const EventPayloadSchema = z
  .object({
    id: z.string().openapi({ example: 'evt_5f1c0e3a9b7d4c2e8a6f1b3d5c7e9a0b' }),
    type: deliveredType,
    created_at: instant.openapi({ description: 'When the fact happened.' }),
    lot_id: z.string().nullable(),
    data: z.record(z.string(), z.unknown()),
  })
  .openapi('WebhookEvent', { description: 'The body POSTed to the endpoint.' })

export const DeliverySchema = z
  .object({
    id: z.string(),
    event_id: z.string(),
    event_type: deliveredType,
    subscription_id: z.string(),
    lot_id: z.string().nullable(),
    status: z.enum(deliveryStatuses).openapi({
      description:
        'pending (due, waiting for a retry, or held while the subscription is disabled), succeeded, or failed after the last attempt.',
    }),
    attempts: z.int(),
    next_attempt_at: instant.nullable(),
    last_attempt_at: instant.nullable(),
    last_status_code: z.int().nullable(),
    last_error: z.string().nullable(),
    replay_of: z.string().nullable().openapi({ description: 'A replay: the delivery it repeats.' }),
    created_at: instant,
    completed_at: instant.nullable(),
  })
  .openapi('WebhookDelivery')

export const AttemptSchema = z
  .object({
    n: z.int().openapi({ description: '1 for the first attempt.' }),
    at: instant,
    succeeded: z.boolean(),
    status_code: z.int().nullable().openapi({ description: 'null: no answer (timeout, connection error).' }),
    duration_ms: z.int(),
    error: z.string().nullable(),
    response_body: z.string().nullable().openapi({ description: "The first KiB of the endpoint's answer." }),
  })
  .openapi('WebhookAttempt')

export const DeliveryDetailSchema = DeliverySchema.extend({
  event: EventPayloadSchema.nullable(),
  attempt_log: z.array(AttemptSchema),
}).openapi('WebhookDeliveryDetail')
