import { z } from '@hono/zod-openapi'

export const JobSchema = z
  .object({
    name: z.string().openapi({ example: 'payments.reconcile' }),
    description: z.string().nullable(),
    schedule: z
      .string()
      .nullable()
      .openapi({ example: 'every 1 minute', description: 'null: run on demand only.' }),
    last_run_at: z.iso.datetime().nullable(),
    last_finished_at: z.iso.datetime().nullable(),
    next_run_at: z.iso.datetime().nullable(),
    fail_count: z.int(),
    last_failure: z.object({ at: z.iso.datetime().nullable(), reason: z.string() }).nullable(),
    running: z.boolean(),
    last_manual_run: z
      .object({
        started_at: z.iso.datetime(),
        finished_at: z.iso.datetime().nullable(),
        error: z.string().nullable(),
      })
      .nullable()
      .openapi({
        description: 'The last run started with POST /jobs/{name}/run (or in-process with the clock off).',
      }),
  })
  .openapi('Job')

export const JobListSchema = z.object({ data: z.array(JobSchema) }).openapi('JobList')

export const JobRunSchema = z
  .object({
    name: z.string(),
    status: z.enum(['succeeded', 'failed']),
    started_at: z.iso.datetime(),
    finished_at: z.iso.datetime(),
    result: z.unknown().openapi({ description: 'What the job reported (its counts), as JSON.' }),
    error: z.string().nullable(),
  })
  .openapi('JobRun')

export const JobNameParamSchema = z.object({
  name: z
    .string()
    .regex(/^[a-z][a-z0-9.-]{1,63}$/)
    .openapi({ param: { name: 'name', in: 'path' }, example: 'data.purge' }),
})

export const MonthParamSchema = z.object({
  month: z
    .string()
    .regex(/^(20\d\d)-(0[1-9]|1[0-2])$/)
    .openapi({ param: { name: 'month', in: 'path' }, example: '2025-02' }),
})
