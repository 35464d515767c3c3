import { z } from '@hono/zod-openapi'
import { PageQuerySchema, pageSchema } from '../../http/openapi.ts'
import { discountTypes, validationKinds } from './discounts.model.ts'

// Every rule is a pattern, a bound or a discriminated union, so that the OpenAPI document states
// what is accepted (the API is fuzzed from it). One rule spans two fields: valid_to after
// valid_from, answered with 400 naming valid_to.

/** Case-insensitive: stored and compared in uppercase. */
const code = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{1,31}$/, 'a code: 2 to 32 letters, digits, dashes and underscores')
  .openapi({ example: 'SUMMER20' })

const instant = z.iso.datetime({ offset: true }).openapi({ example: '2024-06-01T00:00:00Z' })
const currency = z
  .string()
  .regex(/^[A-Z]{3}$/, 'an ISO 4217 currency code')
  .openapi({ example: 'USD' })
/** Ids of other capabilities (lots, sessions): opaque, checked by lookup. */
const foreignId = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'an id')

const common = {
  name: z
    .string()
    .max(100)
    .regex(/\S/, 'a name with a visible character')
    .openapi({ example: 'Summer Sale 20% Off' }),
  valid_from: instant.optional().openapi({ description: 'Defaults to now.' }),
  valid_to: instant.optional(),
  max_uses: z
    .int()
    .min(1)
    .max(100_000_000)
    .optional()
    .openapi({ description: 'Uses overall; none when absent.' }),
  max_uses_per_user: z.int().min(1).max(1_000_000).optional().openapi({
    description: 'Uses per customer account; sessions without an account are counted overall only.',
  }),
  lot_id: foreignId.optional().openapi({ description: 'Only valid at this facility.' }),
  is_active: z.boolean().default(true),
}

const percentage = z.strictObject({
  discount_type: z.literal('percentage'),
  value: z.int().min(1).max(100).openapi({ example: 20, description: 'Percent off the fee.' }),
  ...common,
})
const fixedAmount = z.strictObject({
  discount_type: z.literal('fixed_amount'),
  value: z.int().min(1).max(100_000_000).openapi({ example: 500, description: 'Minor units off the fee.' }),
  currency,
  ...common,
})
const freeHours = z.strictObject({
  discount_type: z.literal('free_hours'),
  value: z
    .number()
    .min(0.5)
    .max(720)
    .multipleOf(0.5)
    // The generator drops zod's multipleOf: stated again so that the document says it.
    .openapi({ example: 2, multipleOf: 0.5, description: 'Hours off the stay, in half hours.' }),
  ...common,
})

export const DiscountUpdateSchema = z
  .discriminatedUnion('discount_type', [percentage, fixedAmount, freeHours])
  .openapi('DiscountUpdate', {
    description: 'A full replacement: a field left out is cleared (is_active becomes true).',
  })

export const DiscountCreateSchema = z
  .discriminatedUnion('discount_type', [
    percentage.extend({ code }),
    fixedAmount.extend({ code }),
    freeHours.extend({ code }),
  ])
  .openapi('DiscountCreate')

export type DiscountInput = z.output<typeof DiscountUpdateSchema>

export const DiscountSchema = z
  .object({
    id: z.string().openapi({ example: 'SUMMER20', description: 'The code in uppercase.' }),
    code: z.string().openapi({ example: 'SUMMER20' }),
    name: z.string(),
    discount_type: z.enum(discountTypes),
    value: z.number(),
    currency: z.string().nullable(),
    valid_from: z.iso.datetime(),
    valid_to: z.iso.datetime().nullable(),
    max_uses: z.int().nullable(),
    max_uses_per_user: z.int().nullable(),
    lot_id: z.string().nullable(),
    is_active: z.boolean(),
    times_used: z.int(),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .openapi('Discount')

export const DiscountListSchema = pageSchema(DiscountSchema, 'DiscountList')

export const DiscountListQuerySchema = PageQuerySchema.extend({
  active: z
    .enum(['true', 'false'])
    .optional()
    .openapi({ description: 'Only active or only inactive codes.' }),
})

export const DiscountIdParamSchema = z.object({
  id: code.openapi({ param: { name: 'id', in: 'path' }, description: 'The code, in any case.' }),
})

export const invalidReasons = [
  'unknown',
  'expired',
  'not_yet_valid',
  'limit_reached',
  'inactive',
  'wrong_lot',
  'wrong_currency',
  'already_used_by_you',
] as const
export type InvalidReason = (typeof invalidReasons)[number]

export const DiscountCheckSchema = z
  .strictObject({
    code,
    session_id: foreignId.optional().openapi({ description: 'Checks the code for this session.' }),
    lot_id: foreignId.optional().openapi({ description: 'Checks the code at this facility.' }),
  })
  .openapi('DiscountCheck')

export const DiscountCheckResultSchema = z
  .object({
    valid: z.boolean(),
    reason: z.enum(invalidReasons).nullable(),
    // A union, not .nullable(): the generator renders a nullable $ref as allOf [ref, object|null],
    // which still demands an object.
    discount: z.union([DiscountSchema, z.null()]),
    uses_remaining: z.int().nullable().openapi({ description: 'null when the code has no maximum.' }),
  })
  .openapi('DiscountCheckResult')

export const AdjustmentSchema = z
  .object({
    kind: z.enum(['percentage', 'fixed', 'free_minutes', 'full']),
    value: z.number(),
    source: z.enum(['discount', 'validation', 'membership', 'reservation']),
    ref: z.string(),
    label: z.string().openapi({ example: 'Discount SUMMER20 (20%)' }),
  })
  .openapi('Adjustment')

export const RedeemSchema = z.strictObject({ code }).openapi('DiscountRedeem')

export const SessionIdParamSchema = z.object({
  id: foreignId.openapi({ param: { name: 'id', in: 'path' } }),
})

const merchant = z
  .string()
  .max(100)
  .regex(/\S/, 'a merchant name with a visible character')
  .openapi({ example: 'Cinema' })
const reference = z.string().max(100).optional().openapi({ example: 'receipt 4711' })

export const ValidationCreateSchema = z
  .discriminatedUnion('kind', [
    z.strictObject({ merchant, kind: z.literal('full'), reference }),
    z.strictObject({
      merchant,
      kind: z.literal('free_minutes'),
      value: z.int().min(1).max(10_080).openapi({ description: 'Minutes off the stay.' }),
      reference,
    }),
    z.strictObject({
      merchant,
      kind: z.literal('fixed'),
      value: z
        .int()
        .min(1)
        .max(100_000_000)
        .openapi({ description: "Minor units of the session's currency." }),
      reference,
    }),
    z.strictObject({
      merchant,
      kind: z.literal('percentage'),
      value: z.int().min(1).max(100),
      reference,
    }),
  ])
  .openapi('PartnerValidationCreate', {
    description: 'One validation per merchant per session; `full` covers the whole fee.',
  })

export type ValidationInput = z.output<typeof ValidationCreateSchema>

export const ValidationSchema = z
  .object({
    id: z.string().openapi({ description: '`<session id>:<merchant, lowercase>`' }),
    session_id: z.string(),
    merchant: z.string(),
    kind: z.enum(validationKinds),
    value: z.number().nullable(),
    currency: z.string().nullable(),
    reference: z.string().nullable(),
    label: z.string().openapi({ example: 'Validated by Cinema (2 h free)' }),
    created_by: z.string(),
    created_at: z.iso.datetime(),
  })
  .openapi('PartnerValidation')

export const ValidationListSchema = pageSchema(ValidationSchema, 'PartnerValidationList')
