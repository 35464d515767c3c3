import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto'

// Passwords are hashed with scrypt (memory-hard, in node:crypto, run on libuv's thread pool):
// N = 2^15, r = 8, p = 1 uses 32 MiB and about 60 ms a hash on our machines.

const params = { N: 2 ** 15, r: 8, p: 1 }
const KEY_LENGTH = 32

function derive(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(
      password.normalize('NFKC'),
      salt,
      KEY_LENGTH,
      { ...options, maxmem: 128 * 1024 * 1024 },
      (error, key) => (error ? reject(error) : resolve(key)),
    ),
  )
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await derive(password, salt, params)
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${key.toString('base64')}`
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$')
  if (scheme !== 'scrypt' || !salt || !hash) return false
  const expected = Buffer.from(hash, 'base64')
  const key = await derive(password, Buffer.from(salt, 'base64'), {
    N: Number(n),
    r: Number(r),
    p: Number(p),
  })
  return key.length === expected.length && timingSafeEqual(key, expected)
}

/** Verified against when the account does not exist, so that both answers take the same time. */
export const unknownAccountHash = `scrypt$${params.N}$${params.r}$${params.p}$${randomBytes(16).toString('base64')}$${randomBytes(KEY_LENGTH).toString('base64')}`

const common = new Set([
  'password',
  'password1',
  'password12',
  'password123',
  'password1234',
  '1234567890',
  '12345678910',
  'qwertyuiop',
  'qwerty123456',
  '1q2w3e4r5t',
  'iloveyou123',
  'letmein1234',
  'welcome1234',
  'admin12345',
  'parking123',
  'parkingpass',
  'changeme123',
  'abcdefghij',
  'abc1234567',
  '0123456789',
  '1111111111',
  'aaaaaaaaaa',
  'passw0rd123',
  'football123',
])

/**
 * NIST SP 800-63B style: length over composition rules. 10 to 128 characters, not a well-known
 * password, not containing the e-mail's local part.
 */
export function passwordProblem(password: string, email: string): string | undefined {
  if (password.length < 10) return 'must be at least 10 characters long'
  if (password.length > 128) return 'must be at most 128 characters long'
  const lower = password.toLowerCase()
  if (common.has(lower)) return 'is too common; choose another'
  const local = email.split('@')[0]?.toLowerCase() ?? ''
  if (local.length >= 4 && lower.includes(local)) return 'must not contain the e-mail address'
  return undefined
}
