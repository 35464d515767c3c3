import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname, join, resolve, sep } from 'node:path'
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { withTimeout } from './timeout.ts'

// Where uploaded documents (ID documents, exports) live: S3 or an S3-compatible server when a
// bucket is configured, the local disk otherwise. Objects are private in both; clients reach
// them only through the API.

export type StoredDocument = { body: Uint8Array; contentType: string }

export type DocumentStorage = {
  readonly kind: 'local' | 's3'
  put(key: string, body: Uint8Array, contentType: string): Promise<void>
  /** undefined when there is no such object. */
  get(key: string): Promise<StoredDocument | undefined>
  /** Deleting a missing object is not an error. */
  delete(key: string): Promise<void>
  /** Resolves when the store answers; for health probes. */
  check(timeoutMs: number): Promise<void>
  /**
   * A short-lived link to one document. S3: an absolute presigned URL. Local disk: a path under
   * the API (`/api/v1/documents/download?...`) carrying an HMAC signature and its expiry.
   */
  link(key: string, ttlSeconds: number): Promise<{ url: string; expires_at: Date }>
  /** Whether a local-disk link is genuine and unexpired (always false for S3). */
  verifyLink(key: string, expires: number, signature: string): boolean
}

function linkSignature(secret: string, key: string, expires: number): string {
  return createHmac('sha256', secret).update(`${key}\n${expires}`).digest('base64url')
}

/** Keys are ours (ids and fixed prefixes), never user text; still, nothing may escape the store. */
export function assertValidKey(key: string): void {
  if (
    !/^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/.test(key) ||
    key.split('/').includes('..')
  ) {
    throw new Error(`invalid storage key "${key}"`)
  }
}

export function localDiskStorage(root: string, linkSecret: string): DocumentStorage {
  const base = resolve(root)
  const pathOf = (key: string) => {
    assertValidKey(key)
    const path = resolve(base, key)
    if (!path.startsWith(base + sep)) throw new Error(`invalid storage key "${key}"`)
    return path
  }
  return {
    kind: 'local',
    async put(key, body, contentType) {
      const path = pathOf(key)
      await mkdir(dirname(path), { recursive: true })
      // Write then rename: a reader never sees half a document, a crash leaves only a temp file.
      const temp = `${path}.${randomUUID()}.tmp`
      await writeFile(temp, body, { mode: 0o600 })
      await writeFile(`${temp}.meta`, JSON.stringify({ contentType }), { mode: 0o600 })
      await rename(`${temp}.meta`, `${path}.meta`)
      await rename(temp, path)
    },
    async get(key) {
      const path = pathOf(key)
      try {
        const [body, meta] = await Promise.all([readFile(path), readFile(`${path}.meta`, 'utf8')])
        return {
          body: new Uint8Array(body),
          contentType: (JSON.parse(meta) as { contentType: string }).contentType,
        }
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw error
      }
    },
    async delete(key) {
      const path = pathOf(key)
      await rm(path, { force: true })
      await rm(`${path}.meta`, { force: true })
    },
    async check() {
      await mkdir(base, { recursive: true })
      const probe = join(base, `.probe-${randomUUID()}`)
      await writeFile(probe, '')
      await rm(probe, { force: true })
    },
    async link(key, ttlSeconds) {
      assertValidKey(key)
      const expires = Math.floor(Date.now() / 1000) + ttlSeconds
      const query = new URLSearchParams({
        key,
        expires: String(expires),
        signature: linkSignature(linkSecret, key, expires),
      })
      return { url: `/api/v1/documents/download?${query}`, expires_at: new Date(expires * 1000) }
    },
    verifyLink(key, expires, signature) {
      if (!Number.isInteger(expires) || expires * 1000 < Date.now()) return false
      const expected = Buffer.from(linkSignature(linkSecret, key, expires))
      const given = Buffer.from(signature)
      return given.length === expected.length && timingSafeEqual(given, expected)
    },
  }
}

export type S3Options = {
  bucket: string
  region: string
  endpoint: string | undefined
  forcePathStyle: boolean
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined
}

export function s3Storage(options: S3Options): DocumentStorage {
  const client = new S3Client({
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    maxAttempts: 2,
  })
  const Bucket = options.bucket
  return {
    kind: 's3',
    async put(key, body, contentType) {
      assertValidKey(key)
      await client.send(new PutObjectCommand({ Bucket, Key: key, Body: body, ContentType: contentType }))
    },
    async get(key) {
      assertValidKey(key)
      try {
        const object = await client.send(new GetObjectCommand({ Bucket, Key: key }))
        if (!object.Body) return undefined
        return {
          body: await object.Body.transformToByteArray(),
          contentType: object.ContentType ?? 'application/octet-stream',
        }
      } catch (error) {
        if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') return undefined
        throw error
      }
    },
    async delete(key) {
      assertValidKey(key)
      await client.send(new DeleteObjectCommand({ Bucket, Key: key }))
    },
    async check(timeoutMs) {
      await withTimeout(client.send(new HeadBucketCommand({ Bucket })), timeoutMs, 'storage check')
    },
    async link(key, ttlSeconds) {
      assertValidKey(key)
      const command = new GetObjectCommand({ Bucket, Key: key, ResponseContentDisposition: 'attachment' })
      return {
        url: await getSignedUrl(client, command, { expiresIn: ttlSeconds }),
        expires_at: new Date(Date.now() + ttlSeconds * 1000),
      }
    },
    verifyLink: () => false,
  }
}
