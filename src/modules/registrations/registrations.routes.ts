import { z } from '@hono/zod-openapi'
import { access, defineRoute } from '../../http/access.ts'
import { jsonResponse, PageQuerySchema, pageSchema, problemResponses } from '../../http/openapi.ts'
import { requestStatuses } from './registrations.model.ts'

const tags = ['Registration requests']

export const RegistrationSchema = z
  .object({
    id: z.string(),
    user_id: z.string(),
    status: z.enum(requestStatuses),
    note: z.string().nullable(),
    documents: z.array(
      z
        .object({ id: z.string(), file_name: z.string(), content_type: z.string(), size: z.int() })
        .openapi('RegistrationDocument'),
    ),
    submitted_at: z.iso.datetime(),
    decided_at: z.iso.datetime().nullable(),
    reason: z.string().nullable(),
  })
  .openapi('RegistrationRequest')

const ListSchema = pageSchema(RegistrationSchema, 'RegistrationRequestList')

const ListQuery = PageQuerySchema.extend({ status: z.enum(requestStatuses).optional() })

const IdParam = z.object({ id: z.uuid() })

export const submit = defineRoute(access.customersIncludingUnapproved, {
  method: 'post',
  path: '/api/v1/registration-requests',
  operationId: 'submitRegistrationRequest',
  summary: 'Send identification documents for approval',
  description:
    'multipart/form-data with 1 to 4 `documents` (PDF, PNG, JPEG or WebP, judged by their bytes, at most 5 MiB each) and an optional `note`. One pending request per account; an admin approves or denies it, and the account becomes active or denied.',
  tags,
  request: {
    body: {
      required: true,
      content: { 'multipart/form-data': { schema: { $ref: '#/components/schemas/RegistrationUpload' } } },
    },
  },
  responses: {
    201: jsonResponse(RegistrationSchema, 'The request, pending'),
    ...problemResponses('VALIDATION_FAILED', 'CONFLICT', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE'),
  },
})

export const mine = defineRoute(access.anyAccount, {
  method: 'get',
  path: '/api/v1/registration-requests/mine',
  operationId: 'listMyRegistrationRequests',
  summary: 'The signed-in account’s registration requests',
  tags,
  request: { query: ListQuery },
  responses: {
    200: jsonResponse(ListSchema, 'A page of requests'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const list = defineRoute(access.roles('admin'), {
  method: 'get',
  path: '/api/v1/registration-requests',
  operationId: 'listRegistrationRequests',
  summary: 'Registration requests, oldest first (filter `status=pending` for the queue)',
  tags,
  request: { query: ListQuery },
  responses: {
    200: jsonResponse(ListSchema, 'A page of requests'),
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const get = defineRoute(access.anyAccount, {
  method: 'get',
  path: '/api/v1/registration-requests/{id}',
  operationId: 'getRegistrationRequest',
  summary: 'One registration request (its owner or an admin)',
  tags,
  request: { params: IdParam },
  responses: {
    200: jsonResponse(RegistrationSchema, 'The request'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const documentLink = defineRoute(access.roles('admin'), {
  method: 'get',
  path: '/api/v1/registration-requests/{id}/documents/{document_id}/link',
  operationId: 'getRegistrationDocumentLink',
  summary: 'A link to one document, valid for 5 minutes',
  description:
    'Documents are never public. With S3 the link is a presigned URL; on local disk it is a signed API path.',
  tags,
  request: { params: z.object({ id: z.uuid(), document_id: z.uuid() }) },
  responses: {
    200: jsonResponse(
      z.object({ url: z.string(), expires_at: z.iso.datetime() }).openapi('DocumentLink'),
      'The link',
    ),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const approve = defineRoute(access.roles('admin'), {
  method: 'post',
  path: '/api/v1/registration-requests/{id}/approve',
  operationId: 'approveRegistrationRequest',
  summary: 'Approve: the account becomes active',
  tags,
  request: { params: IdParam },
  responses: {
    200: jsonResponse(RegistrationSchema, 'The decided request'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT'),
  },
})

export const deny = defineRoute(access.roles('admin'), {
  method: 'post',
  path: '/api/v1/registration-requests/{id}/deny',
  operationId: 'denyRegistrationRequest',
  summary: 'Deny with a reason: the account becomes denied',
  tags,
  request: {
    params: IdParam,
    body: {
      required: true,
      content: {
        'application/json': {
          schema: z.strictObject({ reason: z.string().trim().min(3).max(500) }).openapi('DenyRegistration'),
        },
      },
    },
  },
  responses: {
    200: jsonResponse(RegistrationSchema, 'The decided request'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT', 'UNSUPPORTED_MEDIA_TYPE'),
  },
})

export const download = defineRoute(access.public, {
  method: 'get',
  path: '/api/v1/documents/download',
  operationId: 'downloadDocument',
  summary: 'Fetch a document through a signed link (local-disk storage)',
  description: 'Only links made by `getRegistrationDocumentLink` work, until they expire.',
  tags,
  request: {
    // Plain strings: whatever is wrong with a link, the answer is the same 403.
    query: z.object({
      key: z.string().min(1).max(300),
      expires: z.string().min(1).max(20),
      signature: z.string().min(1).max(100),
    }),
  },
  responses: {
    200: {
      description: 'The document',
      content: {
        'application/pdf': { schema: z.string().openapi({ format: 'binary' }) },
        'image/png': { schema: z.string().openapi({ format: 'binary' }) },
        'image/jpeg': { schema: z.string().openapi({ format: 'binary' }) },
        'image/webp': { schema: z.string().openapi({ format: 'binary' }) },
      },
    },
    ...problemResponses('VALIDATION_FAILED', 'FORBIDDEN', 'NOT_FOUND'),
  },
})
