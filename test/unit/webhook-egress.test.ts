import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  EgressRefused,
  isPrivateHost,
  post,
  refusedAddress,
} from '../../src/modules/webhooks/webhooks.egress.ts'

// Where a webhook delivery may go when private hosts are not allowed: the address classifier
// over every range it must refuse, and a real POST through a resolver that answers what a
// hostile DNS would (the check and the connection use one resolution).

describe('refusedAddress', () => {
  test.each([
    '0.0.0.0',
    '0.1.2.3',
    '10.0.0.1',
    '10.255.255.255',
    '100.64.0.1',
    '100.127.255.254',
    '127.0.0.1',
    '127.8.9.10',
    '169.254.169.254',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '198.18.0.1',
    '198.19.255.255',
    '224.0.0.1',
    '239.255.255.250',
    '240.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    '0:0:0:0:0:0:0:1',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'fe80::1%eth0',
    'febf::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:a9fe:a9fe',
    '::ffff:10.1.2.3',
    '64:ff9b::a9fe:a9fe',
    '64:ff9b::8.8.8.8',
    '::127.0.0.1',
    '2002:7f00:1::1',
    '2002:a9fe:a9fe::',
    'ff02::1',
  ])('refuses %s', (address) => {
    expect(refusedAddress(address)).toEqual(expect.any(String))
  })

  test.each([
    '1.1.1.1',
    '8.8.8.8',
    '9.255.255.255',
    '11.0.0.1',
    '100.63.255.255',
    '100.128.0.1',
    '126.255.255.255',
    '128.0.0.1',
    '169.253.1.1',
    '172.15.255.255',
    '172.32.0.1',
    '192.167.1.1',
    '192.169.1.1',
    '198.17.255.255',
    '198.20.0.1',
    '223.255.255.255',
    '2606:4700:4700::1111',
    '2a00:1450:4001:82a::200e',
    '::ffff:8.8.8.8',
    '2002:808:808::1',
    'fbff::1',
  ])('lets %s through', (address) => {
    expect(refusedAddress(address)).toBeUndefined()
  })

  test('names why', () => {
    expect(refusedAddress('169.254.169.254')).toMatch(/link-local/)
    expect(refusedAddress('::ffff:127.0.0.1')).toMatch(/loopback/)
    expect(refusedAddress('64:ff9b::1.2.3.4')).toMatch(/NAT64/)
    expect(refusedAddress('not-an-address')).toBe('not an IP address')
  })
})

describe('isPrivateHost (the check on the URL at subscription time)', () => {
  test.each([
    ['localhost', true],
    ['localhost.', true],
    ['api.localhost', true],
    ['printer.local', true],
    ['100.64.1.1', true],
    ['[::ffff:7f00:1]', true],
    ['[64:ff9b::a9fe:a9fe]', true],
    ['198.18.0.1', true],
    ['hooks.example.com', false],
    ['8.8.8.8', false],
    ['[2606:4700:4700::1111]', false],
  ])('%s: %s', (host, expected) => {
    expect(isPrivateHost(host)).toBe(expected)
  })
})

describe('post', () => {
  let server: Server
  let port: number
  const received: string[] = []

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = ''
      req.on('data', (chunk) => {
        body += chunk
      })
      req.on('end', () => {
        received.push(`${req.headers.host} ${body}`)
        res.writeHead(202, { 'Retry-After': '7' }).end('x'.repeat(5000))
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
  })

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve))
  })

  // A name the tests own: what a public-looking name answering a loopback address would do.
  const resolveTo = (address: string) => async () => [{ address, family: 4 }]
  const init = () => ({
    headers: { 'Content-Type': 'application/json' },
    body: '{"n":1}',
    signal: AbortSignal.timeout(5_000),
    maxBody: 1024,
  })

  test('connects to the address its resolver answered, and reads only the first KiB', async () => {
    const answer = await post(`http://hooks.example.test:${port}/in`, init(), {
      allowPrivateHosts: true,
      resolve: resolveTo('127.0.0.1'),
    })
    expect(answer.status).toBe(202)
    expect(answer.headers['retry-after']).toBe('7')
    expect(answer.head).toHaveLength(1024)
    expect(received.at(-1)).toBe(`hooks.example.test:${port} {"n":1}`)
  })

  test('refuses a name resolving to a private address, before connecting', async () => {
    const before = received.length
    const failure = await post(`http://hooks.example.test:${port}/in`, init(), {
      allowPrivateHosts: false,
      resolve: resolveTo('127.0.0.1'),
    }).catch((error: unknown) => error)
    expect(failure).toBeInstanceOf(EgressRefused)
    expect((failure as Error).message).toBe('hooks.example.test resolves to 127.0.0.1, a loopback address')
    expect(received).toHaveLength(before)
  })

  test('refuses a name when any one of its addresses is private', async () => {
    const failure = await post(`http://hooks.example.test:${port}/in`, init(), {
      allowPrivateHosts: false,
      resolve: async () => [
        { address: '8.8.8.8', family: 4 },
        { address: '169.254.169.254', family: 4 },
      ],
    }).catch((error: unknown) => error)
    expect(failure).toBeInstanceOf(EgressRefused)
    expect((failure as Error).message).toMatch(/169\.254\.169\.254, a link-local address/)
  })

  test('refuses private literals, also in their IPv6 spellings', async () => {
    for (const host of ['127.0.0.1', '[::ffff:7f00:1]', '[::1]']) {
      const failure = await post(`http://${host}:${port}/in`, init(), { allowPrivateHosts: false }).catch(
        (error: unknown) => error,
      )
      expect(failure, host).toBeInstanceOf(EgressRefused)
    }
  })
})
