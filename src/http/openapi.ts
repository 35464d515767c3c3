import { z } from '@hono/zod-openapi'
import { type ErrorCode, errorCodes, statusOf } from '../shared/errors.ts'

export const FieldProblemSchema = z
  .object({
    in: z.enum(['body', 'query', 'path', 'header', 'cookie', 'form']),
    field: z.string().openapi({ example: 'email' }),
    pointer: z.string().openapi({ example: '/email' }),
    reason: z.string().openapi({ example: 'Invalid email address' }),
  })
  .openapi('FieldProblem')

export const ProblemSchema = z
  .looseObject({
    type: z.string().openapi({ example: '/problems/validation-failed' }),
    title: z.string(),
    status: z.int(),
    detail: z.string(),
    instance: z.string().openapi({ description: 'The path of the request that failed.' }),
    code: z.enum(errorCodes),
    request_id: z.string().openapi({ description: 'Also in the X-Request-Id header and in every log line.' }),
    errors: z
      .array(FieldProblemSchema)
      .optional()
      .openapi({ description: 'Every failing field and its reason.' }),
  })
  .openapi('Problem', { description: 'An RFC 9457 problem; extension members may follow.' })

const descriptions: Record<number, string> = {
  400: 'The request is malformed or fails validation',
  401: 'Missing or invalid credentials',
  402: 'A payment is due first',
  403: 'The caller may not do this',
  404: 'Not found',
  405: 'Method not allowed on this path',
  409: 'Conflicts with the current state',
  413: 'The body is larger than the configured limit',
  415: 'Unsupported content type',
  422: 'Well-formed, but cannot be carried out as asked',
  429: 'Rate limited',
  500: 'Unexpected error',
  503: 'A dependency is unavailable',
}

const problemContent = { 'application/problem+json': { schema: ProblemSchema } }

/**
 * The error responses of an operation, as problem+json, by the codes it can raise. 500 is always
 * included: any operation can fail unexpectedly.
 */
export function problemResponses(...codes: ErrorCode[]) {
  const statuses = new Set([...codes.map(statusOf), 500])
  return Object.fromEntries(
    [...statuses]
      .sort()
      .map((status) => [status, { description: descriptions[status] ?? 'Error', content: problemContent }]),
  ) as Record<number, { description: string; content: typeof problemContent }>
}

/** A JSON response of an operation. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { 'application/json': { schema } } }
}

/** A required JSON request body. */
export function jsonBody<T extends z.ZodType>(schema: T) {
  return { required: true, content: { 'application/json': { schema } } }
}

/** The optional `Idempotency-Key` header of a create that a client may retry. */
export function idempotencyHeader(description: string) {
  return z.object({
    'idempotency-key': z
      .string()
      .regex(/^[\x21-\x7e]{1,255}$/)
      .optional()
      .openapi({ param: { name: 'idempotency-key', in: 'header' }, description }),
  })
}

/** `?limit=&cursor=` of every list: a capped limit and the opaque cursor of the previous page. */
export const PageQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,400}$/)
    .optional()
    .openapi({ description: 'The `next_cursor` of the previous page.' }),
})

/** `{ data, next_cursor }`, the shape of every list. */
export function pageSchema<T extends z.ZodType>(item: T, name: string) {
  return z.object({ data: z.array(item), next_cursor: z.string().nullable() }).openapi(name)
}
