import { z } from '@hono/zod-openapi'
import { dependencyNames } from './health.service.ts'

export const LivenessSchema = z
  .object({
    status: z.literal('ok'),
    version: z.string(),
    uptime_seconds: z.int().nonnegative(),
  })
  .openapi('Liveness')

export const DependencyCheckSchema = z
  .object({
    status: z.enum(['up', 'down']),
    latency_ms: z.number().nonnegative(),
    reason: z.string().optional(),
  })
  .openapi('DependencyCheck')

const checks = z.object(Object.fromEntries(dependencyNames.map((name) => [name, DependencyCheckSchema])))

export const ReadinessSchema = z.object({ status: z.literal('ready'), checks }).openapi('Readiness')
