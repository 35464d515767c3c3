import { createRoute, z } from '@hono/zod-openapi'
import { problemResponses } from '../../http/openapi.ts'
import { errorCodes, slugOf } from '../../shared/errors.ts'

export const problemTypeSlugs = errorCodes.map(slugOf)

export const ProblemTypeSchema = z
  .object({
    type: z.string().openapi({ example: '/problems/validation-failed' }),
    code: z.enum(errorCodes),
    status: z.int(),
    title: z.string(),
  })
  .openapi('ProblemType')

export const getProblemType = createRoute({
  method: 'get',
  path: '/problems/{slug}',
  operationId: 'getProblemType',
  summary: 'Describe a problem type',
  description:
    'Every problem body names its `type` as a link here, so a client can look up what a code means.',
  tags: ['Operations'],
  security: [],
  request: { params: z.object({ slug: z.enum(problemTypeSlugs as [string, ...string[]]) }) },
  responses: {
    200: { description: 'The problem type', content: { 'application/json': { schema: ProblemTypeSchema } } },
    ...problemResponses('VALIDATION_FAILED'),
  },
})
