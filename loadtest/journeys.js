// Walk-in journeys under load: entry -> fee -> cash payment -> exit, at a constant arrival rate,
// with the latency of each step as its own trend (p99 in the summary). setup() signs in as an admin
// and makes a lot of its own with SPACES spaces and an hourly tariff, so that every stay costs one
// step and must be paid before the exit. See loadtest/README.md.
//
//   k6 run -e BASE_URL=http://127.0.0.1:3000 -e ADMIN_EMAIL=... -e ADMIN_PASSWORD=... \
//     -e RATE=20 -e DURATION=30s loadtest/journeys.js

import { check, fail } from 'k6'
import exec from 'k6/execution'
import http from 'k6/http'
import { Counter, Trend } from 'k6/metrics'

const env = __ENV
const baseUrl = (env.BASE_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, '')
const vus = Number(env.VUS ?? 20)
const p99 = Number(env.STEP_P99_MS ?? 500)

const steps = {
  entry: new Trend('step_entry', true),
  fee: new Trend('step_fee', true),
  pay: new Trend('step_pay', true),
  exit: new Trend('step_exit', true),
}
const journey = new Trend('journey', true)
const journeysDone = new Counter('journeys_done')
const journeysFailed = new Counter('journeys_failed')

export const options = {
  scenarios: {
    journeys: {
      executor: 'constant-arrival-rate',
      rate: Number(env.RATE ?? 10),
      timeUnit: '1s',
      duration: env.DURATION ?? '30s',
      preAllocatedVUs: vus,
      maxVUs: Number(env.MAX_VUS ?? vus * 2),
    },
  },
  thresholds: {
    journeys_failed: ['count==0'],
    journeys_done: ['count>0'],
    step_entry: [`p(99)<${p99}`],
    step_fee: [`p(99)<${p99}`],
    step_pay: [`p(99)<${p99}`],
    step_exit: [`p(99)<${p99}`],
    dropped_iterations: [`count<=${env.MAX_DROPPED_ITERATIONS ?? 0}`],
  },
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
}

const json = (body) => ({ 'Content-Type': 'application/json', ...body })

function post(path, body, token, headers = {}) {
  return http.post(`${baseUrl}${path}`, JSON.stringify(body), {
    headers: json({ Authorization: `Bearer ${token}`, ...headers }),
    tags: { name: path.replace(/[0-9a-f-]{36}/g, '{id}') },
  })
}

function expectStatus(res, status, what) {
  if (res.status !== status) fail(`${what}: ${res.status} ${res.body}`)
  return res.json()
}

export function setup() {
  const login = http.post(
    `${baseUrl}/api/v1/auth/login`,
    JSON.stringify({ email: env.ADMIN_EMAIL, password: env.ADMIN_PASSWORD }),
    { headers: json({}) },
  )
  const token = expectStatus(login, 200, 'sign-in (set ADMIN_EMAIL and ADMIN_PASSWORD)').access_token
  const tag = `${Date.now().toString(36)}`
  const lot = expectStatus(
    post(
      '/api/v1/lots',
      {
        name: `k6 journeys ${tag}`,
        address: 'Load test',
        latitude: 52.5,
        longitude: 13.4,
        time_zone: 'Europe/Berlin',
        currency: 'EUR',
      },
      token,
    ),
    201,
    'lot',
  )
  const level = expectStatus(
    post('/api/v1/levels', { lot_id: lot.id, name: 'L1', floor: 1 }, token),
    201,
    'level',
  )
  const zone = expectStatus(post('/api/v1/zones', { level_id: level.id, name: 'Z1' }, token), 201, 'zone')
  expectStatus(
    post(
      '/api/v1/spaces/bulk',
      { zone_id: zone.id, prefix: 'K-', from: 1, to: Number(env.SPACES ?? 500), pad: 4, type: 'STANDARD' },
      token,
    ),
    201,
    'spaces',
  )
  expectStatus(
    post(
      '/api/v1/rates',
      {
        lot_id: lot.id,
        name: 'k6 hourly',
        rate_type: 'hourly',
        amount: 250,
        grace_period_minutes: 0,
        effective_from: new Date(Date.now() - 60_000).toISOString(),
      },
      token,
    ),
    201,
    'rate',
  )
  return { token, lotId: lot.id, tag }
}

export default function (data) {
  const { token, lotId, tag } = data
  // A plate per iteration: 2 letters of the run, the iteration number in base 36.
  const plate =
    `K${tag.slice(-3).toUpperCase()}${exec.scenario.iterationInTest.toString(36).toUpperCase()}`.slice(0, 10)
  const began = Date.now()

  const entry = post('/api/v1/sessions/entry', { license_plate: plate, lot_id: lotId }, token)
  steps.entry.add(entry.timings.duration)
  if (!check(entry, { 'entry 201': (r) => r.status === 201 })) return journeysFailed.add(1)
  const session = entry.json().session

  const fee = http.get(`${baseUrl}/api/v1/sessions/${session.id}/calculate-fee`, {
    headers: { Authorization: `Bearer ${token}` },
    tags: { name: '/api/v1/sessions/{id}/calculate-fee' },
  })
  steps.fee.add(fee.timings.duration)
  if (!check(fee, { 'fee 200 and due': (r) => r.status === 200 && r.json().amount_due > 0 }))
    return journeysFailed.add(1)

  const pay = post(
    '/api/v1/payments',
    { session_id: session.id, payment_method: 'cash', amount: fee.json().amount_due },
    token,
    { 'Idempotency-Key': `k6-${session.id}` },
  )
  steps.pay.add(pay.timings.duration)
  if (!check(pay, { 'pay 201': (r) => r.status === 201 })) return journeysFailed.add(1)

  const exit = post('/api/v1/sessions/exit', { ticket_number: entry.json().ticket_number }, token)
  steps.exit.add(exit.timings.duration)
  if (!check(exit, { 'exit 200': (r) => r.status === 200 })) return journeysFailed.add(1)

  journey.add(Date.now() - began)
  journeysDone.add(1)
}
