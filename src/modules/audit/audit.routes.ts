import { access, defineRoute } from '../../http/access.ts'
import { jsonResponse, problemResponses } from '../../http/openapi.ts'
import {
  AuditIdParamSchema,
  AuditListQuerySchema,
  AuditListSchema,
  AuditRecordSchema,
} from './audit.schemas.ts'

const tags = ['Audit']
const admins = access.roles('admin')

export const listAuditLog = defineRoute(admins, {
  method: 'get',
  path: '/api/v1/audit-log',
  operationId: 'listAuditLog',
  summary: 'The audit log of operator and admin actions, newest first',
  description:
    'Every POST, PUT, PATCH and DELETE an operator or admin makes on a signed-in operation, whatever its outcome: who, what, when, the target, the body sent, the state before and after. Filters combine; a `since` not before `until` is a 422 `empty_range`.',
  tags,
  request: { query: AuditListQuerySchema },
  responses: {
    200: jsonResponse(AuditListSchema, 'A page of audit records'),
    ...problemResponses('VALIDATION_FAILED', 'UNPROCESSABLE'),
  },
})

export const getAuditRecord = defineRoute(admins, {
  method: 'get',
  path: '/api/v1/audit-log/{id}',
  operationId: 'getAuditRecord',
  summary: 'One audit record',
  tags,
  request: { params: AuditIdParamSchema },
  responses: {
    200: jsonResponse(AuditRecordSchema, 'The audit record'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})
