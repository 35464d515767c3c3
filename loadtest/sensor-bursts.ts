import type { MqttClient } from 'mqtt'

// What the benchmarks send: bursts of sensor readings over MQTT, as devices publish them.

export type SensorMessage = { topic: string; payload: string; device: string; seq: number }

/**
 * A burst maker for `devices`: `burst(count, changeEvery)` gives `count` readings over the devices,
 * each device's sequence going on from the last burst; a device's state flips every `changeEvery`
 * readings (1: every reading is a change, the worst case).
 */
export function sensorBursts(devices: readonly string[], bootId: string) {
  let seqBase = 0
  return (count: number, changeEvery = 1): SensorMessage[] => {
    const out: SensorMessage[] = []
    for (let i = 0; i < count; i++) {
      const device = devices[i % devices.length] as string
      const seq = seqBase + Math.floor(i / devices.length) + 1
      const body = {
        device_id: device,
        boot_id: bootId,
        seq,
        measured_at: Date.now(),
        occupied: Math.floor(seq / changeEvery) % 2 === 1,
        battery: 90,
        signal: -70,
      }
      out.push({ topic: `parking/sensors/${device}/state`, payload: JSON.stringify(body), device, seq })
    }
    seqBase += Math.ceil(count / devices.length)
    return out
  }
}

/** Publishes every message at QoS 1 with up to `window` in flight; throws when any failed. */
export async function publishAll(
  publisher: MqttClient,
  messages: readonly { topic: string; payload: string }[],
  window: number,
): Promise<void> {
  let next = 0
  let failed = 0
  const lane = async () => {
    while (next < messages.length) {
      const m = messages[next++] as { topic: string; payload: string }
      await publisher.publishAsync(m.topic, m.payload, { qos: 1 }).catch(() => failed++)
    }
  }
  await Promise.all(Array.from({ length: window }, lane))
  if (failed > 0) throw new Error(`${failed} publishes failed`)
}
