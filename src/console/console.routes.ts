import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { extname } from 'node:path'
import type { OpenAPIHono } from '@hono/zod-openapi'
import type { Context } from 'hono'
import type { AppEnv } from '../http/context.ts'
import { AppError } from '../shared/errors.ts'

// The operator console: static files from this folder (HTML, native ES modules, CSS), served as
// they are: no build step. They are read once at start; an ETag and `no-cache` make a browser
// revalidate each file (a 304 when unchanged), so a new version is picked up on the next load.

/** The console's routes: pages for people, not API operations, so they stay out of /openapi.json. */
export const consoleRoutes = ['/console', '/console/', '/console/:file']

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
}

/**
 * Everything from this origin and nothing inline: scripts and styles are files, the API and its
 * feed are same-origin fetches. `style-src` allows no inline styles; the app sets none.
 */
const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

type Asset = { body: Uint8Array<ArrayBuffer>; type: string; etag: string }

function loadAssets(): Map<string, Asset> {
  const dir = new URL('./', import.meta.url)
  const assets = new Map<string, Asset>()
  for (const name of readdirSync(dir)) {
    const type = types[extname(name)]
    if (!type) continue // this module and anything else that is not a page asset stays private
    const body = new Uint8Array(readFileSync(new URL(name, dir)))
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`
    assets.set(name, { body, type, etag })
  }
  return assets
}

export function mountConsole(app: OpenAPIHono<AppEnv>) {
  const assets = loadAssets()
  const serve = (c: Context<AppEnv>, name: string) => {
    const asset = assets.get(name)
    if (!asset) throw new AppError('NOT_FOUND', `No console file ${name}`)
    const headers = {
      'Content-Type': asset.type,
      'Cache-Control': 'no-cache',
      ETag: asset.etag,
      'Content-Security-Policy': contentSecurityPolicy,
    }
    const match = c.req.header('if-none-match')
    if (match?.split(/\s*,\s*/).includes(asset.etag)) return c.body(null, 304, headers)
    return c.body(asset.body, 200, headers)
  }
  app.get('/console', (c) => serve(c, 'index.html'))
  app.get('/console/', (c) => serve(c, 'index.html'))
  app.get('/console/:file', (c) => serve(c, c.req.param('file')))
}
