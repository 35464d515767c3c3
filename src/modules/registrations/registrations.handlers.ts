import type { OpenAPIHono } from '@hono/zod-openapi'
import { principalOf } from '../../http/access.ts'
import type { AppEnv } from '../../http/context.ts'
import { AppError } from '../../shared/errors.ts'
import * as routes from './registrations.routes.ts'
import { documentLimits, type UploadedFile } from './registrations.service.ts'

/** Paths whose bodies may be larger than BODY_LIMIT_BYTES: uploads of documents. */
export const uploadLimits: Record<string, number> = {
  [routes.submit.path]: documentLimits.maxFiles * documentLimits.maxBytes + 64 * 1024,
}

export function mountRegistrations(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.registerComponent('schemas', 'RegistrationUpload', {
    type: 'object',
    required: ['documents'],
    properties: {
      documents: {
        type: 'array',
        minItems: 1,
        maxItems: documentLimits.maxFiles,
        items: { type: 'string', format: 'binary' },
        description: 'PDF, PNG, JPEG or WebP files, judged by their bytes; at most 5 MiB each.',
      },
      note: { type: 'string', maxLength: 1000 },
    },
  })

  app.openapi(routes.submit, async (c) => {
    if (!/^multipart\/form-data\b/i.test(c.req.header('content-type') ?? '')) {
      throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send the documents as multipart/form-data')
    }
    const form = await c.req.parseBody({ all: true }).catch(() => {
      throw new AppError('MALFORMED_REQUEST', 'The multipart body could not be parsed')
    })
    const documents = [form.documents ?? []].flat()
    const files: UploadedFile[] = []
    for (const [index, item] of documents.entries()) {
      if (typeof item === 'string') {
        throw new AppError('VALIDATION_FAILED', 'Each document must be a file', {
          errors: [
            { in: 'form', field: `documents.${index}`, pointer: `/documents/${index}`, reason: 'not a file' },
          ],
        })
      }
      files.push({
        name: item.name || `document-${index + 1}`,
        bytes: new Uint8Array(await item.arrayBuffer()),
      })
    }
    const note = typeof form.note === 'string' ? form.note : null
    if (note !== null && note.length > 1000) {
      throw new AppError('VALIDATION_FAILED', 'The note is longer than 1000 characters', {
        errors: [{ in: 'form', field: 'note', pointer: '/note', reason: 'at most 1000 characters' }],
      })
    }
    const request = await c.var.services.registrations.submit(principalOf(c).userId, files, note)
    return c.json(request, 201)
  })

  app.openapi(routes.mine, async (c) => {
    const query = c.req.valid('query')
    return c.json(await c.var.services.registrations.list({ ...query, userId: principalOf(c).userId }), 200)
  })

  app.openapi(routes.list, async (c) =>
    c.json(await c.var.services.registrations.list(c.req.valid('query')), 200),
  )

  app.openapi(routes.get, async (c) => {
    const { userId, role } = principalOf(c)
    return c.json(await c.var.services.registrations.get(c.req.valid('param').id, { userId, role }), 200)
  })

  app.openapi(routes.documentLink, async (c) => {
    const { id, document_id } = c.req.valid('param')
    const link = await c.var.services.registrations.documentLink(id, document_id)
    return c.json({ url: link.url, expires_at: link.expires_at.toISOString() }, 200)
  })

  app.openapi(routes.approve, async (c) =>
    c.json(await c.var.services.registrations.approve(c.req.valid('param').id, principalOf(c).userId), 200),
  )

  app.openapi(routes.deny, async (c) =>
    c.json(
      await c.var.services.registrations.deny(
        c.req.valid('param').id,
        principalOf(c).userId,
        c.req.valid('json').reason,
      ),
      200,
    ),
  )

  app.openapi(routes.download, async (c) => {
    const { key, expires, signature } = c.req.valid('query')
    const { storage } = c.var.services
    if (!storage.verifyLink(key, Number(expires), signature)) {
      throw new AppError('FORBIDDEN', 'The link is not valid or has expired; ask for a new one')
    }
    const document = await storage.get(key)
    if (!document) throw new AppError('NOT_FOUND', 'The document no longer exists')
    return c.body(document.body as Uint8Array<ArrayBuffer>, 200, {
      'Content-Type': document.contentType,
      'Content-Disposition': 'attachment',
      'Cache-Control': 'private, no-store',
    }) as never
  })
}
