import { createRoute, z } from '@hono/zod-openapi'
import { problemResponses } from '../../http/openapi.ts'
import { LivenessSchema, ReadinessSchema } from './health.schemas.ts'

const tags = ['Operations']

export const liveness = createRoute({
  method: 'get',
  path: '/health',
  operationId: 'getHealth',
  summary: 'Liveness: the process is up and serving',
  description: 'Answers without touching any dependency; a failing liveness probe means restart the process.',
  tags,
  security: [],
  responses: {
    200: { description: 'The process is alive', content: { 'application/json': { schema: LivenessSchema } } },
    ...problemResponses(),
  },
})

export const readiness = createRoute({
  method: 'get',
  path: '/ready',
  operationId: 'getReadiness',
  summary: 'Readiness: the database, Redis and the broker all answer',
  description:
    'Probes each dependency with a short timeout. 503 names what is down in `detail` and carries every check in `checks`; it turns back to 200 by itself when the dependency returns.',
  tags,
  security: [],
  responses: {
    200: { description: 'Ready for traffic', content: { 'application/json': { schema: ReadinessSchema } } },
    ...problemResponses('DEPENDENCY_UNAVAILABLE'),
  },
})

export const metrics = createRoute({
  method: 'get',
  path: '/metrics',
  operationId: 'getMetrics',
  summary: 'Prometheus metrics',
  description:
    'Request counts and latency histograms by route, event-loop delay, heap and GC, and dependency status, in the Prometheus text format. Requires a bearer token when METRICS_TOKEN is set.',
  tags,
  // Open unless METRICS_TOKEN is set.
  security: [{}, { metricsToken: [] }],
  responses: {
    200: {
      description: 'Prometheus text exposition format',
      content: { 'text/plain': { schema: z.string() } },
    },
    ...problemResponses('UNAUTHENTICATED'),
  },
})
