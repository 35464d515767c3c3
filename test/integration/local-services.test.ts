import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import mqtt from 'mqtt'
import { afterAll, describe, expect, inject, it } from 'vitest'
import { scratchDir, startServices } from '../harness/services.ts'

// The local services behave as the platform relies on: Redis keeps acknowledged writes across a
// crash, Mosquitto refuses clients it does not know, stripe-mock and the S3 gateway answer.

const own: { stop(): Promise<void> }[] = []
afterAll(async () => {
  for (const set of own) await set.stop()
})

describe('embedded Redis', () => {
  it('keeps an acknowledged write across a crash (append-only file, fsync always)', async () => {
    const set = await startServices(scratchDir('redis-aof'), ['redis'])
    own.push(set)
    const client = new Redis(set.urls.redis)
    await client.xadd('ingest', '*', 'space', 'A-001', 'occupied', '1')
    await client.set('space:A-001', 'occupied')
    await sleep(1_500)
    client.disconnect()
    await set.services.redis.process.kill()

    await set.services.redis.process.start()
    const again = new Redis(set.urls.redis)
    expect(await again.get('space:A-001')).toBe('occupied')
    expect(await again.xlen('ingest')).toBe(1)
    expect(await again.config('GET', 'appendonly')).toEqual(['appendonly', 'yes'])
    again.disconnect()
  })
})

describe('embedded Mosquitto', () => {
  const connect = (url: string) =>
    mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 3_000 })

  it('accepts the platform credentials and refuses anonymous and unknown clients', async () => {
    const url = inject('services').mqtt
    const platform = await connect(url)
    expect(platform.connected).toBe(true)
    await platform.endAsync()

    const port = new URL(url).port
    await expect(connect(`mqtt://127.0.0.1:${port}`)).rejects.toThrow()
    await expect(connect(`mqtt://sensor-9:guess@127.0.0.1:${port}`)).rejects.toThrow()
  })

  it('runs with TCP_NODELAY and the dynamic-security plugin configured', async () => {
    const set = await startServices(scratchDir('mosquitto'), ['mqtt'])
    own.push(set)
    const { readFile } = await import('node:fs/promises')
    const config = await readFile(`${set.services.mqtt.process.spec.dir}/mosquitto.conf`, 'utf8')
    expect(config).toMatch(/^set_tcp_nodelay true$/m)
    expect(config).toMatch(/^plugin .*mosquitto_dynamic_security\.so$/m)
    expect(config).toMatch(/^allow_anonymous false$/m)
  })

  it('delivers a QoS 1 message published by the platform to a subscriber', async () => {
    const url = inject('services').mqtt
    const subscriber = await connect(url)
    const publisher = await connect(url)
    const received = new Promise<string>((resolve) =>
      subscriber.on('message', (_t, payload) => resolve(payload.toString())),
    )
    await subscriber.subscribeAsync('test/local-services', { qos: 1 })
    await publisher.publishAsync('test/local-services', 'hello', { qos: 1 })
    expect(await received).toBe('hello')
    await Promise.all([subscriber.endAsync(), publisher.endAsync()])
  })
})

describe('stripe-mock and the S3 gateway', () => {
  it('stripe-mock answers the Stripe API', async () => {
    const res = await fetch(`${inject('services').stripe}/v1/payment_intents`, {
      method: 'POST',
      headers: { Authorization: 'Bearer sk_test_123', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'amount=1500&currency=usd',
    })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ object: 'payment_intent' })
  })

  it('the S3 gateway answers and refuses an unsigned listing', async () => {
    const res = await fetch(`${inject('services').s3}/`)
    expect(res.status).toBe(403)
    expect(await res.text()).toMatch(/<Code>AccessDenied<\/Code>/)
  })
})
