import { z } from '@hono/zod-openapi'
import { access, defineRoute } from '../../http/access.ts'
import { jsonResponse, problemResponses } from '../../http/openapi.ts'
import { JobListSchema, JobNameParamSchema, JobRunSchema, MonthParamSchema } from './jobs.schemas.ts'

const admins = access.roles('admin')

export const listJobs = defineRoute(admins, {
  method: 'get',
  path: '/api/v1/jobs',
  operationId: 'listJobs',
  summary: 'Every scheduled job with its schedule, last and next run and failures',
  description: "From the scheduler's definitions and agenda's `jobs` collection.",
  tags: ['Jobs'],
  responses: {
    200: jsonResponse(JobListSchema, 'The jobs, by name'),
    ...problemResponses(),
  },
})

export const runJob = defineRoute(admins, {
  method: 'post',
  path: '/api/v1/jobs/{name}/run',
  operationId: 'runJob',
  summary: 'Run a job now and answer its result',
  description:
    'Runs in this instance, at once, whatever the schedule. Every job is idempotent: running it again does what is left to do and nothing twice. A job that fails answers 200 with status `failed`.',
  tags: ['Jobs'],
  request: { params: JobNameParamSchema },
  responses: {
    200: jsonResponse(JobRunSchema, 'How the run went'),
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const getMonthlyReport = defineRoute(admins, {
  method: 'get',
  path: '/api/v1/reports/monthly/{month}',
  operationId: 'getMonthlyReport',
  summary: 'The monthly activity report of a month, as HTML',
  description:
    "The page the `reports.monthly` job e-mails to admins: per lot entries, exits, revenue, refunds, reservations and average stay for the calendar month in the lot's time zone.",
  tags: ['Reports'],
  request: { params: MonthParamSchema },
  responses: {
    200: { description: 'The report', content: { 'text/html': { schema: z.string() } } },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})
