import type { OpenAPIHono } from '@hono/zod-openapi'
import { principalOf } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import * as routes from './exports.routes.ts'

export function mountExports(app: OpenAPIHono<AppEnv>) {
  app.openapi(routes.requestParkingHistoryExport, async (c) =>
    c.json(await c.var.services.exports.request(principalOf(c).userId, c.req.valid('json')), 202),
  )

  app.openapi(routes.getExport, async (c) =>
    c.json(await c.var.services.exports.get(principalOf(c).userId, c.req.valid('param').id), 200),
  )

  app.openapi(routes.downloadExport, async (c) => {
    const file = await c.var.services.exports.download(principalOf(c).userId, c.req.valid('param').id)
    return c.body(file.body as Uint8Array<ArrayBuffer>, 200, {
      'Content-Type': 'text/csv; charset=utf-8',
      'Content-Disposition': `attachment; filename="${file.filename}"`,
      'Cache-Control': 'private, no-store',
    }) as never
  })
}
