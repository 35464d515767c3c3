import { z } from '@hono/zod-openapi'
import { PageQuerySchema, pageSchema } from '../../http/openapi.ts'
import { auditedMethods, auditOutcomes, snapshotNames } from './audit.model.ts'

const instant = z.iso.datetime({ offset: true }).openapi({ example: '2025-03-01T00:00:00Z' })
const anyJson = z.unknown().openapi({ description: 'JSON, secrets replaced by "[redacted]".' })

export const AuditRecordSchema = z
  .object({
    id: z.string().openapi({ example: '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a' }),
    at: z.iso.datetime().openapi({ description: 'When the request arrived.' }),
    actor: z.object({
      user_id: z.string(),
      role: z.enum(['operator', 'admin']),
      email: z.string().nullable().openapi({ description: "The account's address when it acted." }),
    }),
    action: z.string().openapi({ description: 'The operationId of the operation.', example: 'replaceLot' }),
    method: z.enum(auditedMethods),
    path: z.string().openapi({ example: '/api/v1/lots/0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a' }),
    route: z.string().openapi({ example: '/api/v1/lots/{id}' }),
    target: z
      .object({
        type: z.string().openapi({ description: 'The collection in the path.', example: 'lots' }),
        id: z.string().nullable(),
      })
      .nullable()
      .openapi({
        description:
          "What was acted on: the path's first id (/lots/{id}, /registration-requests/{id}/approve), or for a create the id of what was made.",
      }),
    status: z.int().openapi({ description: 'The HTTP status of the answer.' }),
    outcome: z.enum(auditOutcomes).openapi({
      description: 'succeeded (2xx), refused (4xx: denied, invalid, conflicting), failed (5xx).',
    }),
    error_code: z.string().nullable().openapi({ description: 'The problem `code` of a refusal or failure.' }),
    request_id: z.string().openapi({ description: 'The X-Request-Id of the request, as in the logs.' }),
    ip: z.string().openapi({ description: 'The client address (X-Forwarded-For when TRUST_PROXY is on).' }),
    user_agent: z.string().nullable(),
    request_body: anyJson.openapi({ description: 'The JSON body sent, secrets redacted; null for none.' }),
    before: anyJson.openapi({
      description:
        'The resource as its GET showed it just before the action (same caller); null for a create or when it has no GET.',
    }),
    after: anyJson.openapi({ description: 'The JSON answer of a successful action; null otherwise.' }),
    truncated: z.array(z.enum(snapshotNames)).openapi({
      description: 'Snapshots longer than 16 KiB: kept as their first 16 KiB of JSON text, a string.',
    }),
  })
  .openapi('AuditRecord')

export const AuditListQuerySchema = PageQuerySchema.extend({
  actor_id: z
    .string()
    .min(1)
    .max(100)
    .optional()
    .openapi({ description: 'Only the actions of this account.' }),
  action: z
    .string()
    .regex(/^[A-Za-z0-9_]{1,100}$/)
    .optional()
    .openapi({ description: 'An operationId, e.g. replaceLot.' }),
  target_type: z.string().min(1).max(100).optional().openapi({ example: 'lots' }),
  target_id: z.string().min(1).max(200).optional(),
  since: instant.optional().openapi({ description: 'Recorded at or after this instant.' }),
  until: instant.optional().openapi({ description: 'Recorded before this instant.' }),
})

export const AuditListSchema = pageSchema(AuditRecordSchema, 'AuditRecordList')

export const AuditIdParamSchema = z.object({
  id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }),
})
