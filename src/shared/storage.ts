import { randomUUID } from 'node:crypto'
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

export function localDiskStorage(root: string): DocumentStorage {
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
  }
}
