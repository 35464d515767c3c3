// Availability reads at a constant rate: GETs cycling through PATHS (public endpoints, no token).
// See loadtest/README.md for the environment and the thresholds.
//
//   k6 run -e BASE_URL=http://127.0.0.1:3000 -e RATE=500 -e DURATION=30s \
//     -e PATHS=/api/v1/lots/<id>/availability,/api/v1/zones/<id>/availability loadtest/availability.js

import exec from 'k6/execution'
import http from 'k6/http'

const env = __ENV

const baseUrl = (env.BASE_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, '')
const paths = (env.PATHS ?? '')
  .split(',')
  .map((path) => path.trim())
  .filter((path) => path !== '')
if (paths.length === 0) {
  throw new Error('PATHS must list the paths to read, comma-separated, e.g. /api/v1/lots/<id>/availability')
}
const urls = paths.map((path) => `${baseUrl}${path.startsWith('/') ? '' : '/'}${path}`)

const vus = Number(env.VUS ?? 20)

export const options = {
  scenarios: {
    availability: {
      executor: 'constant-arrival-rate',
      rate: Number(env.RATE ?? 200),
      timeUnit: '1s',
      duration: env.DURATION ?? '30s',
      preAllocatedVUs: vus,
      maxVUs: Number(env.MAX_VUS ?? vus * 2),
    },
  },
  thresholds: {
    http_req_duration: [`p(99)<${env.P99_MS ?? 10}`],
    http_req_failed: [`rate<=${env.MAX_FAILED_RATE ?? 0}`],
    dropped_iterations: [`count<=${env.MAX_DROPPED_ITERATIONS ?? 0}`],
    // A run that sent nothing must not pass on empty metrics.
    http_reqs: ['count>0'],
  },
  // Only status and timing matter here; not keeping bodies saves the VUs' memory and time.
  discardResponseBodies: true,
}

export default function () {
  // Iterations are numbered across all VUs of the scenario, so the paths are read evenly.
  const i = exec.scenario.iterationInTest % urls.length
  http.get(urls[i], { tags: { name: paths[i] } })
}
