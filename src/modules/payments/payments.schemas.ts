import { z } from '@hono/zod-openapi'
import { idempotencyHeader, PageQuerySchema, pageSchema } from '../../http/openapi.ts'
import { FeeLineSchema } from '../pricing/pricing.schemas.ts'
import { type PaymentMethod, paymentMethods, paymentStatuses } from './payments.model.ts'

// Every rule is a pattern or a bound, so that the OpenAPI document states exactly what is accepted.

const money = z.int().min(0).max(100_000_000)
const sessionId = z.uuid().openapi({ example: '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a' })

const paymentCommon = {
  session_id: sessionId,
  amount: money.optional().openapi({
    description: 'Minor units. Omitted: the amount due. Given, it must equal the amount due (else 422).',
  }),
  discount_code: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,40}$/)
    .optional()
    .openapi({ example: 'WELCOME10', description: 'Redeemed first; the amount due is recomputed.' }),
}

/** Only cash has a tendered amount: a union on the method, so that the document says so. */
export const PaymentCreateSchema = z
  .discriminatedUnion('payment_method', [
    z.strictObject({
      payment_method: z.literal('cash').openapi({ description: 'Recorded by operators.' }),
      ...paymentCommon,
      tendered: money.optional().openapi({
        description: 'What the driver handed over; the receipt shows the change.',
      }),
    }),
    z.strictObject({
      payment_method: z.enum(['card', 'mobile'] satisfies PaymentMethod[]).openapi({
        description:
          '`card` (a card terminal) is recorded by operators; `mobile` starts a Stripe PaymentIntent for the app to confirm.',
      }),
      ...paymentCommon,
    }),
  ])
  .openapi('PaymentCreate')

export const PaymentSchema = z
  .object({
    id: z.string(),
    session_id: z.string(),
    ticket_number: z.string(),
    lot_id: z.string(),
    user_id: z.string().nullable(),
    payment_method: z.enum(paymentMethods),
    provider: z.enum(['stripe']).nullable(),
    payment_intent_id: z.string().nullable(),
    amount: z.int(),
    currency: z.string().openapi({ example: 'USD' }),
    tendered: z.int().nullable(),
    change: z.int().nullable(),
    refunded_amount: z.int(),
    discount_code: z.string().nullable(),
    status: z.enum(paymentStatuses),
    receipt_number: z.string().nullable().openapi({ example: 'RCP-20261123-000042' }),
    duplicate: z.boolean().openapi({
      description:
        'A Stripe payment that succeeded for a session another payment had settled: refunded in full.',
    }),
    settled_at: z.iso.datetime().nullable(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .openapi('Payment')

export const PaymentListSchema = pageSchema(PaymentSchema, 'PaymentList')

export const PaymentListQuery = PageQuerySchema.extend({
  session_id: z.uuid().optional().openapi({ description: 'Staff: the payments of one session.' }),
})

export const PaymentIdParamSchema = z.object({
  id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }),
})

export const IdempotencyHeaderSchema = idempotencyHeader(
  'Makes a retry safe: the same key and body answer the first answer; the same key with another body is a 422.',
)

export const IntentCreateSchema = z.strictObject({ session_id: sessionId }).openapi('PaymentIntentCreate')

export const IntentSchema = z
  .object({
    payment_id: z.string(),
    payment_intent_id: z.string().openapi({ example: 'pi_3Q...' }),
    client_secret: z.string().nullable(),
    amount: z.int(),
    currency: z.string(),
    status: z.enum(paymentStatuses),
  })
  .openapi('PaymentIntent')

export const ConfirmSchema = z
  .strictObject({
    payment_intent_id: z.string().regex(/^pi_[A-Za-z0-9_]{1,200}$/),
    payment_method: z
      .string()
      .regex(/^pm_[A-Za-z0-9_]{1,200}$/)
      .optional()
      .openapi({ example: 'pm_card_visa' }),
  })
  .openapi('PaymentConfirm')

export const RefundCreateSchema = z
  .strictObject({
    amount: z.int().min(1).max(100_000_000).optional().openapi({
      description: 'Minor units. Omitted: everything that remains.',
    }),
    reason: z
      .string()
      .regex(/^\S[\s\S]{0,499}$/)
      .openapi({ example: 'Barrier fault' }),
  })
  .openapi('RefundCreate')

export const RefundSchema = z
  .object({
    id: z.string(),
    payment_id: z.string(),
    amount: z.int(),
    currency: z.string(),
    reason: z.string(),
    provider_refund_id: z.string().nullable(),
    created_at: z.iso.datetime(),
    payment: PaymentSchema,
  })
  .openapi('Refund')

export const ReceiptSchema = z
  .object({
    receipt_number: z.string().openapi({ example: 'RCP-20261123-000042' }),
    payment_id: z.string(),
    session_id: z.string(),
    lot_id: z.string(),
    ticket_number: z.string(),
    plate: z.string(),
    entry_at: z.iso.datetime(),
    exit_at: z.iso.datetime().nullable(),
    duration_minutes: z.int(),
    lines: z.array(FeeLineSchema),
    paid: z.int(),
    currency: z.string(),
    payment_method: z.enum(paymentMethods),
    tendered: z.int().nullable(),
    change: z.int().nullable(),
    refunded_amount: z.int(),
    status: z.enum(paymentStatuses),
    issued_at: z.iso.datetime(),
  })
  .openapi('Receipt')

export const ValidateExitSchema = z
  .strictObject({
    ticket_number: z
      .string()
      .regex(/^[A-Za-z0-9-]{4,40}$/)
      .openapi({ example: 'TKT-A1B2C3D4E5F6' }),
  })
  .openapi('ValidateExitInput')

export const ExitValidationSchema = z
  .object({
    session_id: z.string(),
    ticket_number: z.string(),
    is_paid: z.boolean(),
    can_exit: z.boolean(),
    time_remaining_minutes: z.int().nullable(),
    amount_due: z.int(),
    currency: z.string(),
    exit_deadline: z.iso.datetime().nullable(),
  })
  .openapi('ExitValidation')

export const WebhookAckSchema = z
  .object({ received: z.boolean(), duplicate: z.boolean() })
  .openapi('WebhookAck')
