import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP, type LookupFunction } from 'node:net'

/**
 * How a delivery leaves the machine. With private hosts not allowed, every address the endpoint's
 * name resolves to is checked at connect time, and the connection goes to the checked address:
 * the check and the connect use one resolution, so a name that answers a public address to a
 * check and a private one to the connect (DNS rebinding) gets nowhere.
 */

type Range = { bits: number[]; prefix: number; why: string }

const v4 = (cidr: string, why: string): Range => {
  const [address = '', prefix = '32'] = cidr.split('/')
  return {
    bits: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...address.split('.').map(Number)],
    prefix: 96 + Number(prefix),
    why,
  }
}
const v6 = (cidr: string, why: string): Range => {
  const [address = '', prefix = '128'] = cidr.split('/')
  return { bits: [...(bytesOfV6(address) ?? [])], prefix: Number(prefix), why }
}

/** IPv4 ranges as IPv4-mapped IPv6 (::ffff:a.b.c.d), so that both spellings meet one list. */
const refusedRanges: Range[] = [
  v4('0.0.0.0/8', 'an unspecified ("this network") address'),
  v4('10.0.0.0/8', 'a private address'),
  v4('100.64.0.0/10', 'a carrier-grade NAT address'),
  v4('127.0.0.0/8', 'a loopback address'),
  v4('169.254.0.0/16', 'a link-local address (cloud metadata lives there)'),
  v4('172.16.0.0/12', 'a private address'),
  v4('192.0.0.0/24', 'an IETF protocol assignment'),
  v4('192.168.0.0/16', 'a private address'),
  v4('198.18.0.0/15', 'a benchmarking address'),
  v4('224.0.0.0/4', 'a multicast address'),
  v4('240.0.0.0/4', 'a reserved address'),
  v6('::/128', 'an unspecified address'),
  v6('::1/128', 'a loopback address'),
  // IPv4-compatible (deprecated), NAT64 (well-known and local-use) and discard prefixes reach
  // IPv4 space or nowhere: refused whole.
  v6('::/96', 'an IPv4-compatible address'),
  v6('64:ff9b::/96', 'a NAT64 address'),
  v6('64:ff9b:1::/48', 'a local-use NAT64 address'),
  v6('100::/64', 'a discard address'),
  v6('fc00::/7', 'a unique local (private) address'),
  v6('fe80::/10', 'a link-local address'),
  v6('fec0::/10', 'a site-local address'),
  v6('ff00::/8', 'a multicast address'),
]

/** The 16 bytes of an IPv6 address (a zone `%eth0` ignored); undefined when it is not one. */
function bytesOfV6(text: string): number[] | undefined {
  let address = text.replace(/%.*$/, '').toLowerCase()
  if (isIP(address) !== 6) return undefined
  // A dotted IPv4 tail (::ffff:127.0.0.1) as two groups.
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address)
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number]
    address = `${address.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', tail] = address.split('::')
  const groupsOf = (part: string) => (part === '' ? [] : part.split(':'))
  const first = groupsOf(head)
  const last = tail === undefined ? [] : groupsOf(tail)
  const groups = [...first, ...Array(8 - first.length - last.length).fill('0'), ...last]
  return groups.flatMap((group) => {
    const value = Number.parseInt(group, 16)
    return [value >> 8, value & 0xff]
  })
}

function bytesOf(address: string): number[] | undefined {
  if (isIP(address) === 4)
    return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...address.split('.').map(Number)]
  return bytesOfV6(address)
}

function within(bytes: number[], range: Range): boolean {
  for (let bit = 0; bit < range.prefix; bit++) {
    const i = bit >> 3
    const mask = 0x80 >> (bit & 7)
    if (((bytes[i] ?? 0) & mask) !== ((range.bits[i] ?? 0) & mask)) return false
  }
  return true
}

/**
 * Why a delivery must not go to this IP address (loopback, private, link-local, CGNAT, reserved,
 * multicast, or IPv6 forms that reach IPv4 space), or undefined when it may. Not an IP: refused.
 */
export function refusedAddress(address: string): string | undefined {
  const bytes = bytesOf(address)
  if (!bytes) return 'not an IP address'
  // 6to4 (2002::/16) carries an IPv4 address in bytes 2-5: judged as that address.
  if (bytes[0] === 0x20 && bytes[1] === 0x02) {
    return refusedAddress(bytes.slice(2, 6).join('.'))
  }
  return refusedRanges.find((range) => within(bytes, range))?.why
}

/** Names that are local by definition, and IP literals in a refused range (the check at subscription time). */
export function isPrivateHost(hostname: string): boolean {
  const host = hostname
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase()
  if (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.local')) return true
  return isIP(host) !== 0 && refusedAddress(host) !== undefined
}

/** A delivery not made because its endpoint is (or resolves to) an address it must not reach. */
export class EgressRefused extends Error {
  readonly code = 'EGRESS_REFUSED'
}

type Resolve = (hostname: string) => Promise<LookupAddress[]>

const systemResolve: Resolve = (hostname) =>
  new Promise((resolve, reject) =>
    dnsLookup(hostname, { all: true, verbatim: true }, (error, addresses) =>
      error ? reject(error) : resolve(addresses),
    ),
  )

/**
 * A `lookup` for node:net that resolves the name and, when `check`, refuses it when any of its
 * addresses is refused (a name with one private address among public ones is not a public
 * endpoint). It answers the checked addresses, which are the ones connected to.
 */
export function guardedLookup(resolve: Resolve = systemResolve, check = true): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname)
      .then((found) => {
        const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family
        const addresses = family ? found.filter((a) => a.family === family) : found
        const [first] = addresses
        if (!first) throw Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' })
        for (const { address } of check ? addresses : []) {
          const why = refusedAddress(address)
          if (why) throw new EgressRefused(`${hostname} resolves to ${address}, ${why}`)
        }
        if (options.all) callback(null, addresses)
        else callback(null, first.address, first.family)
      })
      .catch((error: NodeJS.ErrnoException) => callback(error, '', 0))
  }
}

export type EgressSettings = {
  /** Reach loopback, private and link-local endpoints (development, tests). */
  allowPrivateHosts: boolean
  /** Name resolution (tests inject one); the system's resolver otherwise. */
  resolve?: Resolve
}

export type Answer = { status: number; headers: IncomingHttpHeaders; head: string }

/**
 * One POST, no redirects followed, no connection kept: answers the status, headers and at most
 * the first `maxBody` bytes of the answer (the rest is dropped). Throws EgressRefused before any
 * connection to a refused address, and the socket's errors (with their `code`) otherwise.
 */
export async function post(
  target: string,
  init: { headers: Record<string, string>; body: string; signal: AbortSignal; maxBody: number },
  settings: EgressSettings,
): Promise<Answer> {
  const url = new URL(target)
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const check = !settings.allowPrivateHosts
  const literal = isIP(host) !== 0
  const why = check && literal ? refusedAddress(host) : undefined
  if (why) throw new EgressRefused(`${host} is ${why}`)
  // A literal is connected to as it is (node does not look it up).
  const lookup = literal || (!check && !settings.resolve) ? undefined : guardedLookup(settings.resolve, check)
  const body = Buffer.from(init.body)
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest
  return await new Promise<Answer>((resolve, reject) => {
    const request = send(
      url,
      {
        method: 'POST',
        headers: { ...init.headers, 'Content-Length': String(body.byteLength) },
        signal: init.signal,
        agent: false,
        ...(lookup ? { lookup } : {}),
      },
      (response) => {
        const chunks: Buffer[] = []
        let size = 0
        let settled = false
        const done = () => {
          if (settled) return
          settled = true
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            head: Buffer.concat(chunks).subarray(0, init.maxBody).toString('utf8'),
          })
          response.destroy()
        }
        response.on('data', (chunk: Buffer) => {
          chunks.push(chunk)
          size += chunk.byteLength
          if (size >= init.maxBody) done()
        })
        response.on('end', done)
        // Cut off before the end (the signal, the peer): the attempt failed.
        response.on('close', () => {
          if (settled) return
          settled = true
          reject(init.signal.reason ?? new Error('the answer was cut off'))
        })
      },
    )
    request.on('error', reject)
    request.end(body)
  })
}
