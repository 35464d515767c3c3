import { access, defineRoute } from '../../http/access.ts'
import { jsonResponse, problemResponses } from '../../http/openapi.ts'
import { DashboardQuerySchema, DashboardSchema } from './reports.schemas.ts'

const tags = ['Reports']

export const getDashboard = defineRoute(access.roles('admin'), {
  method: 'get',
  path: '/api/v1/reports/dashboard',
  operationId: 'getDashboard',
  summary: "Today's figures of a lot or of all lots",
  description:
    'Occupancy from the hot state; entries, exits and revenue of the lot\'s own "today" (its time zone) from counters kept as things happen; sessions and charges running and reservations to come.',
  tags,
  request: { query: DashboardQuerySchema },
  responses: {
    200: jsonResponse(DashboardSchema, 'The dashboard'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})
