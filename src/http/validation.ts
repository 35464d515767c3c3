import type { z } from '@hono/zod-openapi'
import { AppError, type FieldProblem, fieldLocation } from '../shared/errors.ts'

export type ZodIssueLike = { path: PropertyKey[]; message: string }

/** Every failing field, where it was and why: the one shape of a 400 VALIDATION_FAILED. */
export function validationFailed(issues: readonly ZodIssueLike[], where: FieldProblem['in']): AppError {
  const errors: FieldProblem[] = issues.map((issue) => ({
    in: where,
    ...fieldLocation(issue.path),
    reason: issue.message,
  }))
  return new AppError(
    'VALIDATION_FAILED',
    `${errors.length} field${errors.length === 1 ? '' : 's'} failed validation in the ${where}`,
    { errors },
  )
}

/** Hono's validation targets, in the words of a field problem. */
export function inputLocation(target: string): FieldProblem['in'] {
  switch (target) {
    case 'param':
      return 'path'
    case 'query':
    case 'header':
    case 'cookie':
    case 'form':
      return target
    default:
      return 'body'
  }
}

/** For the few routes that validate by hand (one body in two media types). */
export function parseOrThrow<T extends z.ZodType>(
  schema: T,
  value: unknown,
  where: FieldProblem['in'],
): z.output<T> {
  const result = schema.safeParse(value)
  if (!result.success) throw validationFailed(result.error.issues, where)
  return result.data
}
