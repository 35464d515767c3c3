import { z } from '@hono/zod-openapi'
import { access, defineRoute } from '../../http/access.ts'
import { jsonBody, jsonResponse, problemResponses } from '../../http/openapi.ts'
import { ExportIdParamSchema, ExportRequestSchema, ExportSchema } from './exports.schemas.ts'

const tags = ['Exports']
const customers = access.roles('customer')

export const requestParkingHistoryExport = defineRoute(customers, {
  method: 'post',
  path: '/api/v1/exports/parking-history',
  operationId: 'requestParkingHistoryExport',
  summary: "Request a CSV export of the caller's parking history",
  description:
    "Made in the background: the answer is the queued export. Follow it with GET /exports/{id}; the owner gets an e-mail with the link when it is ready. Rows: the caller's sessions that entered in [from, to), with fees, payments and refunds in minor units. A `from` not before `to` is a 422 `empty_range` (a rule across two fields).",
  tags,
  request: { body: jsonBody(ExportRequestSchema) },
  responses: {
    202: jsonResponse(ExportSchema, 'The export, queued'),
    ...problemResponses('VALIDATION_FAILED', 'UNPROCESSABLE', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'),
  },
})

export const getExport = defineRoute(customers, {
  method: 'get',
  path: '/api/v1/exports/{id}',
  operationId: 'getExport',
  summary: 'The status of an export',
  description: "The owner only; another customer's export is a 404.",
  tags,
  request: { params: ExportIdParamSchema },
  responses: {
    200: jsonResponse(ExportSchema, 'The export'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const downloadExport = defineRoute(customers, {
  method: 'get',
  path: '/api/v1/exports/{id}/download',
  operationId: 'downloadExport',
  summary: 'Download a ready export as CSV',
  description: "The owner only; another customer's export is a 404. Not ready yet: 409.",
  tags,
  request: { params: ExportIdParamSchema },
  responses: {
    200: {
      description: 'The CSV file',
      content: { 'text/csv': { schema: z.string().openapi({ format: 'binary' }) } },
    },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT'),
  },
})
