import type { OpenAPIHono } from '@hono/zod-openapi'
import type { AppEnv } from '../../http/context.ts'
import { type ErrorCode, errorTitles, problemTypeOf, statusOf } from '../../shared/errors.ts'
import { getProblemType } from './problems.routes.ts'

export function mountProblems(app: OpenAPIHono<AppEnv>) {
  app.openapi(getProblemType, (c) => {
    const code = c.req.valid('param').slug.toUpperCase().replaceAll('-', '_') as ErrorCode
    return c.json({ type: problemTypeOf(code), code, status: statusOf(code), title: errorTitles[code] }, 200)
  })
}
