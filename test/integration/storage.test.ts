import { statSync } from 'node:fs'
import { join } from 'node:path'
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { beforeAll, describe, expect, inject, it } from 'vitest'
import { s3TestCredentials } from '../../src/embedded/local-services.ts'
import { type DocumentStorage, localDiskStorage, s3Storage } from '../../src/shared/storage.ts'
import { scratchDir } from '../harness/services.ts'

// The same contract on the local disk and on a real S3-compatible server (versitygw).

const localRoot = scratchDir('storage-local')
const bucket = `documents-${Date.now()}`

const gateway = {
  region: 'us-east-1',
  endpoint: inject('services').s3,
  forcePathStyle: true,
  credentials: s3TestCredentials,
}

function s3(bucketName: string): DocumentStorage {
  return s3Storage({ bucket: bucketName, ...gateway })
}

beforeAll(async () => {
  await new S3Client(gateway).send(new CreateBucketCommand({ Bucket: bucket }))
})

describe.each([
  ['local disk', () => localDiskStorage(localRoot, 'test-link-secret')],
  ['S3 (versitygw)', () => s3(bucket)],
])('document storage on %s', (_name, make) => {
  const pdf = new TextEncoder().encode('%PDF-1.7\n...')

  it('stores, reads back with its content type, and deletes', async () => {
    const storage = make()
    await storage.put('registrations/r-1/id-front.pdf', pdf, 'application/pdf')
    const stored = await storage.get('registrations/r-1/id-front.pdf')
    expect(stored?.contentType).toBe('application/pdf')
    expect(Buffer.from(stored?.body ?? []).toString()).toBe('%PDF-1.7\n...')

    await storage.put('registrations/r-1/id-front.pdf', new Uint8Array([1, 2, 3]), 'image/png')
    expect((await storage.get('registrations/r-1/id-front.pdf'))?.contentType).toBe('image/png')

    await storage.delete('registrations/r-1/id-front.pdf')
    expect(await storage.get('registrations/r-1/id-front.pdf')).toBeUndefined()
    await expect(storage.delete('registrations/r-1/id-front.pdf')).resolves.toBeUndefined()
  })

  it('answers undefined for a missing document', async () => {
    expect(await make().get('nothing/here.pdf')).toBeUndefined()
  })

  it.each(['../etc/passwd', '/absolute', 'a//b', 'a/../../b', '.hidden', 'spaces here', ''])(
    'refuses the key %j',
    async (key) => {
      await expect(make().put(key, pdf, 'application/pdf')).rejects.toThrow(/invalid storage key/)
      await expect(make().get(key)).rejects.toThrow(/invalid storage key/)
    },
  )

  it('passes its health check', async () => {
    await expect(make().check(2_000)).resolves.toBeUndefined()
  })
})

describe('local disk storage', () => {
  it('keeps documents private to the platform user', async () => {
    await localDiskStorage(localRoot, 'test-link-secret').put(
      'private/doc.pdf',
      new Uint8Array([1]),
      'application/pdf',
    )
    expect(statSync(join(localRoot, 'private/doc.pdf')).mode & 0o077).toBe(0)
  })
})

describe('S3 storage', () => {
  it('fails its health check when the bucket does not exist', async () => {
    await expect(s3('no-such-bucket-here').check(2_000)).rejects.toThrow()
  })
})
