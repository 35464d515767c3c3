import type { OpenAPIHono } from '@hono/zod-openapi'
import type { AppEnv } from '../../http/context.ts'
import {
  type ErrorCode,
  errorCodes,
  errorTitles,
  problemTypeOf,
  slugOf,
  statusOf,
} from '../../shared/errors.ts'
import { getProblemType } from './problems.routes.ts'

export function mountProblems(app: OpenAPIHono<AppEnv>) {
  app.openapi(getProblemType, (c) => {
    const slug = c.req.valid('param').slug
    // The route's enum admits only known slugs.
    const code = errorCodes.find((candidate) => slugOf(candidate) === slug) as ErrorCode
    return c.json({ type: problemTypeOf(code), code, status: statusOf(code), title: errorTitles[code] }, 200)
  })
}
