import { z } from '@hono/zod-openapi'
import { idempotencyHeader, PageQuerySchema, pageSchema } from '../../http/openapi.ts'
import { membershipStatuses, paymentMethods } from './memberships.model.ts'

// Every rule is a pattern or a bound, so that the OpenAPI document states what is accepted (the
// API is fuzzed from it). Rules across resources (the lot exists, the vehicles are the member's,
// the plan is active, the limit) are the service's.

export const IdempotencyHeaderSchema = idempotencyHeader(
  'Makes a retry of the subscription safe: the same key and body answer the membership the first one made; the same key with another body is a 422.',
)

const id = z.uuid().openapi({ example: '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a' })
const instant = z.iso.datetime()
const money = z.object({ amount: z.int(), currency: z.string().openapi({ example: 'EUR' }) })

const planFields = {
  name: z.string().min(1).max(100).regex(/\S/).openapi({ example: 'Premium Monthly' }),
  description: z
    .string()
    .max(500)
    .nullable()
    .optional()
    .openapi({ example: 'Unlimited parking with reserved spot' }),
  duration_months: z.int().min(1).max(36).openapi({ example: 1 }),
  price: z
    .int()
    .min(0)
    .max(10_000_000)
    .openapi({ example: 15000, description: "Minor units of the lot's currency; 0: a free plan." }),
  vehicle_limit: z.int().min(1).max(20).openapi({ example: 2 }),
  included_hours: z.int().min(0).max(10_000).nullable().optional().openapi({
    example: null,
    description: 'Hours per period covered in full, before the discount; null: none.',
  }),
  unlimited: z
    .boolean()
    .default(false)
    .openapi({ description: 'The parking fee is covered in full (included hours and discount aside).' }),
  discount_percentage: z.number().min(0).max(100).default(0).openapi({ example: 20 }),
  is_active: z.boolean().default(true),
}

export const PlanCreateSchema = z
  .strictObject({ ...planFields, lot_id: id.openapi({ description: 'The facility the plan is valid at.' }) })
  .openapi('MembershipPlanCreate')

export const PlanReplaceSchema = z.strictObject(planFields).openapi('MembershipPlanReplace', {
  description:
    'A full replacement of the terms (the facility stays). Memberships keep the terms of the periods they bought; renewals take the new ones.',
})

export const PlanSchema = z
  .object({
    id,
    name: z.string(),
    description: z.string().nullable(),
    lot_id: z.string(),
    duration_months: z.int(),
    price: z.int(),
    currency: z.string().openapi({ example: 'EUR' }),
    vehicle_limit: z.int(),
    included_hours: z.int().nullable(),
    unlimited: z.boolean(),
    discount_percentage: z.number(),
    is_active: z.boolean(),
    created_at: instant,
    updated_at: instant,
  })
  .openapi('MembershipPlan')

export const PlanListSchema = pageSchema(PlanSchema, 'MembershipPlanList')

export const PlanListQuery = PageQuerySchema.extend({
  lot_id: id.optional(),
  is_active: z.enum(['true', 'false']).optional().openapi({
    description: 'Staff only: true, active plans; false, inactive ones. Customers see active plans.',
  }),
})

export const SubscribeSchema = z
  .strictObject({
    plan_id: id,
    vehicle_ids: z.array(id).max(20).default([]),
    auto_renew: z.boolean().default(false),
    user_id: id.optional().openapi({ description: 'Staff only: the customer subscribed.' }),
    payment_method: z.enum(['stripe', 'cash', 'card']).default('stripe').openapi({
      description:
        'stripe: the answer carries the PaymentIntent (pay it with its client secret or POST /memberships/{id}/pay). cash and card (a card terminal): staff record the payment. A free plan is active at once.',
    }),
  })
  .openapi('MembershipSubscribe')

export const MembershipSchema = z
  .object({
    id,
    user_id: z.string(),
    plan_id: z.string(),
    plan_name: z.string().nullable(),
    lot_id: z.string(),
    status: z.enum(membershipStatuses),
    auto_renew: z.boolean(),
    cancel_at_period_end: z.boolean(),
    canceled_at: instant.nullable(),
    period_start: instant.nullable().openapi({ description: 'The paid period in force, or the last one.' }),
    period_end: instant.nullable(),
    vehicle_limit: z.int(),
    vehicle_ids: z.array(z.string()),
    periods: z.array(
      z.object({
        index: z.int(),
        starts_at: instant,
        ends_at: instant,
        amount: z.int(),
        currency: z.string(),
        payment_method: z.enum(paymentMethods),
        payment_status: z.enum(['paid', 'pending', 'failed', 'canceled']),
        payment_intent_id: z.string().nullable(),
        client_secret: z.string().nullable().openapi({ description: 'While a Stripe payment is pending.' }),
      }),
    ),
    created_at: instant,
    updated_at: instant,
  })
  .openapi('Membership')

export const MembershipListSchema = pageSchema(MembershipSchema, 'MembershipList')

export const MembershipListQuery = PageQuerySchema.extend({
  user_id: id.optional().openapi({ description: 'Staff only; customers see their own.' }),
  lot_id: id.optional(),
  status: z.enum(membershipStatuses).optional(),
})

export const UsageSchema = z
  .object({
    membership_id: z.string(),
    hours_used: z.number(),
    hours_remaining: z.number().nullable().openapi({ description: 'null: no included hours, or unlimited.' }),
    sessions_count: z.int(),
    savings_to_date: money,
    days_remaining: z.int(),
    period_start: instant.nullable(),
    period_end: instant.nullable(),
  })
  .openapi('MembershipUsage')

export const AddVehicleSchema = z.strictObject({ vehicle_id: id }).openapi('MembershipVehicleAdd')

export const CancelSchema = z
  .strictObject({
    immediately: z
      .boolean()
      .default(false)
      .openapi({ description: 'true: it ends now, without refund. Default: at the end of the period.' }),
  })
  .openapi('MembershipCancel')

export const RenewSchema = z
  .strictObject({
    payment_method: z.enum(['stripe', 'cash', 'card']).default('stripe'),
  })
  .openapi('MembershipRenew')

export const PaySchema = z
  .strictObject({
    payment_method: z
      .string()
      .regex(/^pm_[A-Za-z0-9_]{1,200}$/)
      .optional()
      .openapi({ example: 'pm_card_visa', description: 'Saved for the automatic renewal.' }),
  })
  .openapi('MembershipPay')

export const IdParamSchema = z.object({ id: id.openapi({ param: { name: 'id', in: 'path' } }) })

export const VehicleParamSchema = z.object({
  id: id.openapi({ param: { name: 'id', in: 'path' } }),
  vehicleId: id.openapi({ param: { name: 'vehicleId', in: 'path' } }),
})
