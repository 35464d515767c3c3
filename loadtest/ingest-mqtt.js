// Sensor ingestion at a constant rate: every VU is one device, connected once before the load
// starts, publishing its state readings at QoS 1 to parking/sensors/{device_id}/state and timing
// each PUBACK. See loadtest/README.md for the environment and the thresholds.
//
//   k6 run -e MQTT_URL=mqtt://127.0.0.1:1883 -e DEVICES=devices.json -e RATE=2000 -e DURATION=30s \
//     loadtest/ingest-mqtt.js

import exec from 'k6/execution'
import { Client } from 'k6/x/mqtt'

const env = __ENV

if (!env.DEVICES) {
  throw new Error('DEVICES must name a JSON file [{"device_id","username","password"}], one entry per device')
}
// open() would resolve a relative path against this script's directory; on the command line it
// means the directory k6 was started from.
const devicesFile = env.DEVICES.startsWith('/') || !env.PWD ? env.DEVICES : `${env.PWD}/${env.DEVICES}`
const devices = JSON.parse(open(devicesFile))
if (!Array.isArray(devices) || devices.length === 0) {
  throw new Error(`${env.DEVICES} must hold a non-empty array of {"device_id","username","password"}`)
}

const vus = Number(env.VUS ?? devices.length)
if (!Number.isInteger(vus) || vus < 1 || vus > devices.length) {
  // Two connections with one client id would keep taking the session over from each other.
  throw new Error(`VUS must be between 1 and the number of devices (${devices.length}), got ${env.VUS}`)
}

export const options = {
  scenarios: {
    ingest: {
      executor: 'constant-arrival-rate',
      rate: Number(env.RATE ?? 1000),
      timeUnit: '1s',
      duration: env.DURATION ?? '30s',
      preAllocatedVUs: vus,
      maxVUs: vus,
    },
  },
  thresholds: {
    mqtt_puback_duration: [`p(99)<${env.PUBACK_P99_MS ?? 50}`],
    mqtt_publish_failures: [`rate<=${env.MAX_PUBLISH_FAILURE_RATE ?? 0}`],
    dropped_iterations: [`count<=${env.MAX_DROPPED_ITERATIONS ?? 0}`],
    // A run that published nothing must not pass on empty metrics.
    mqtt_publishes: ['count>0'],
  },
}

// __VU is 0 where k6 evaluates the script for its options, and in setup and teardown: no device
// connects there, or it would take the session over from the VU that publishes as it.
const device = __VU > 0 ? devices[(__VU - 1) % devices.length] : null
const client = device
  ? new Client({
      url: env.MQTT_URL ?? 'mqtt://127.0.0.1:1883',
      username: device.username,
      password: device.password,
      clientId: device.device_id,
    })
  : null
const topic = device ? `parking/sensors/${device.device_id}/state` : ''
// A fresh boot id per run and VU: the platform drops readings by (device, boot, seq) it has seen.
const bootId = `k6-${Date.now().toString(36)}-${__VU}`
let seq = 0
let warned = false

export default function () {
  seq += 1
  const reading = {
    device_id: device.device_id,
    boot_id: bootId,
    seq,
    measured_at: Date.now(),
    occupied: seq % 2 === 1,
    battery: 100 - (seq % 100),
    signal: -60,
  }
  if (!client.publish(topic, JSON.stringify(reading), 1) && !warned) {
    warned = true
    console.warn(
      `VU ${exec.vu.idInTest} (${device.device_id}): ${client.lastError()}; further failures are only counted`,
    )
  }
}
