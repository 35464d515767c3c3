import { z } from '@hono/zod-openapi'
import { exportStatuses } from './exports.model.ts'

// RFC 3339 instants as patterns (not refinements), so that the document states what is accepted.
const instant = z.iso.datetime({ offset: true }).openapi({ example: '2025-03-01T00:00:00Z' })

export const ExportRequestSchema = z
  .strictObject({
    from: instant
      .optional()
      .openapi({ description: 'Sessions that entered at or after this instant; unset: from the first.' }),
    to: instant
      .optional()
      .openapi({ description: 'Sessions that entered before this instant; unset: until now.' }),
  })
  .openapi('ExportRequest')

export const ExportSchema = z
  .object({
    id: z.string().openapi({ example: '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a' }),
    kind: z.literal('parking_history'),
    status: z.enum(exportStatuses).openapi({ description: 'queued -> running -> ready (or failed).' }),
    from: z.iso.datetime().nullable(),
    to: z.iso.datetime().nullable(),
    rows: z.int().nullable().openapi({ description: 'Sessions in the file, once ready.' }),
    size: z.int().nullable().openapi({ description: 'Bytes of the file, once ready.' }),
    error: z.string().nullable(),
    created_at: z.iso.datetime(),
    ready_at: z.iso.datetime().nullable(),
    expires_at: z.iso.datetime().openapi({ description: 'The file and this record are purged after it.' }),
    download_path: z
      .string()
      .nullable()
      .openapi({ example: '/api/v1/exports/0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a/download' }),
  })
  .openapi('Export')

export const ExportIdParamSchema = z.object({
  id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }),
})
