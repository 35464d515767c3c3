import { randomBytes } from 'node:crypto'
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { s3TestCredentials } from '../../src/embedded/local-services.ts'
import { type Account, bearer, createAccount, jsonBody, signInAdmin, testAdmin } from '../harness/accounts.ts'
import { json } from '../harness/http.ts'
import { startTestPlatform, type TestPlatform } from '../harness/platform.ts'

// The approval flow end to end, on local disk and on a real S3-compatible server (versitygw).

const pdf = new TextEncoder().encode('%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n')
const png = Uint8Array.from([
  0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52,
])

type Upload = { name: string; bytes: Uint8Array; type?: string }

function upload(files: Upload[], note?: string): FormData {
  const form = new FormData()
  for (const file of files)
    form.append('documents', new Blob([Buffer.from(file.bytes)], { type: file.type ?? '' }), file.name)
  if (note !== undefined) form.append('note', note)
  return form
}

async function pendingCustomer(platform: TestPlatform) {
  const email = `pending-${randomBytes(5).toString('hex')}@example.com`
  const res = await platform.request('/api/v1/auth/register', {
    method: 'POST',
    ...jsonBody({ email, password: 'a perfectly long passphrase', full_name: 'Pending Driver' }),
  })
  const session = await json(res)
  return { id: session.user.id as string, token: session.access_token as string }
}

function flow(name: string, env: () => Promise<Record<string, string>>) {
  describe(`registration approval on ${name}`, () => {
    let platform: TestPlatform
    let admin: Account

    beforeAll(async () => {
      platform = await startTestPlatform({ ...testAdmin, ...(await env()) })
      admin = await signInAdmin(platform)
    })
    afterAll(async () => {
      await platform?.stop()
    })

    const submit = (token: string, form: FormData) =>
      platform.request('/api/v1/registration-requests', {
        method: 'POST',
        headers: bearer(token),
        body: form,
      })

    it('takes documents from a pending account, lets an admin read them through a short link, and approves', async () => {
      const driver = await pendingCustomer(platform)
      expect((await platform.request('/api/v1/vehicles', { headers: bearer(driver.token) })).status).toBe(403)

      const res = await submit(
        driver.token,
        upload(
          [
            { name: 'licence.pdf', bytes: pdf },
            { name: 'id.png', bytes: png },
          ],
          'hi',
        ),
      )
      expect(res.status).toBe(201)
      const request = await json(res)
      expect(request).toMatchObject({ status: 'pending', user_id: driver.id, note: 'hi' })
      expect(request.documents.map((d: { content_type: string }) => d.content_type)).toEqual([
        'application/pdf',
        'image/png',
      ])

      expect((await submit(driver.token, upload([{ name: 'again.pdf', bytes: pdf }]))).status).toBe(409)
      const mine = await json(
        await platform.request('/api/v1/registration-requests/mine', { headers: bearer(driver.token) }),
      )
      expect(mine.data.map((r: { id: string }) => r.id)).toEqual([request.id])

      const queue = await json(
        await platform.request('/api/v1/registration-requests?status=pending&limit=100', {
          headers: bearer(admin.token),
        }),
      )
      expect(queue.data.some((r: { id: string }) => r.id === request.id)).toBe(true)

      const linkRes = await platform.request(
        `/api/v1/registration-requests/${request.id}/documents/${request.documents[0].id}/link`,
        { headers: bearer(admin.token) },
      )
      expect(linkRes.status).toBe(200)
      const link = await json(linkRes)
      expect(new Date(link.expires_at).getTime() - Date.now()).toBeLessThanOrEqual(300_000)
      const fetched = link.url.startsWith('/') ? await platform.request(link.url) : await fetch(link.url)
      expect(fetched.status).toBe(200)
      expect(Buffer.from(await fetched.arrayBuffer()).equals(Buffer.from(pdf))).toBe(true)

      const approved = await platform.request(`/api/v1/registration-requests/${request.id}/approve`, {
        method: 'POST',
        headers: bearer(admin.token),
      })
      expect(await json(approved)).toMatchObject({ status: 'approved' })
      const me = await json(await platform.request('/api/v1/auth/me', { headers: bearer(driver.token) }))
      expect(me.status).toBe('active')
      expect((await platform.request('/api/v1/vehicles', { headers: bearer(driver.token) })).status).toBe(200)
      const twice = await platform.request(`/api/v1/registration-requests/${request.id}/deny`, {
        method: 'POST',
        ...jsonBody({ reason: 'changed my mind' }, bearer(admin.token)),
      })
      expect(twice.status).toBe(409)
    })

    it('denies with a reason; the account is denied and may try again', async () => {
      const driver = await pendingCustomer(platform)
      const request = await json(await submit(driver.token, upload([{ name: 'id.png', bytes: png }])))
      const denied = await platform.request(`/api/v1/registration-requests/${request.id}/deny`, {
        method: 'POST',
        ...jsonBody({ reason: 'The photo is unreadable' }, bearer(admin.token)),
      })
      expect(await json(denied)).toMatchObject({ status: 'denied', reason: 'The photo is unreadable' })
      expect(
        (await json(await platform.request('/api/v1/auth/me', { headers: bearer(driver.token) }))).status,
      ).toBe('denied')
      expect((await submit(driver.token, upload([{ name: 'id.png', bytes: png }]))).status).toBe(201)
    })
  })
}

flow('local disk', async () => ({}))
flow('S3 (versitygw)', async () => {
  const bucket = `registrations-${randomBytes(4).toString('hex')}`
  const endpoint = inject('services').s3
  await new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: s3TestCredentials,
  }).send(new CreateBucketCommand({ Bucket: bucket }))
  return {
    S3_BUCKET: bucket,
    S3_ENDPOINT: endpoint,
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: s3TestCredentials.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3TestCredentials.secretAccessKey,
  }
})

describe('registration requests: limits, links and visibility', () => {
  let platform: TestPlatform
  let admin: Account
  beforeAll(async () => {
    platform = await startTestPlatform(testAdmin)
    admin = await signInAdmin(platform)
  })
  afterAll(async () => {
    await platform?.stop()
  })
  const submit = (token: string, body: FormData | string, headers: Record<string, string> = {}) =>
    platform.request('/api/v1/registration-requests', {
      method: 'POST',
      headers: { ...bearer(token), ...headers },
      body,
    })

  it('judges a document by its bytes, not by its name or declared type', async () => {
    const driver = await pendingCustomer(platform)
    const forged = upload([
      { name: 'id.pdf', bytes: new TextEncoder().encode('#!/bin/sh\nrm -rf /\n'), type: 'application/pdf' },
    ])
    const res = await submit(driver.token, forged)
    expect(res.status).toBe(400)
    expect((await json(res)).errors[0]).toMatchObject({ in: 'form', field: 'documents.0' })
  })

  it('refuses too many, too large, missing documents and other media types', async () => {
    const driver = await pendingCustomer(platform)
    const five = upload(Array.from({ length: 5 }, (_, i) => ({ name: `${i}.png`, bytes: png })))
    expect((await submit(driver.token, five)).status).toBe(400)
    const big = new Uint8Array(5 * 1024 * 1024 + 1)
    big.set(pdf)
    expect((await submit(driver.token, upload([{ name: 'big.pdf', bytes: big }]))).status).toBe(413)
    expect((await submit(driver.token, upload([], 'no files'))).status).toBe(400)
    const asJson = await submit(driver.token, JSON.stringify({ documents: [] }), {
      'Content-Type': 'application/json',
    })
    expect(asJson.status).toBe(415)
  })

  it('shows a request to its owner and admins only: anyone else gets 404', async () => {
    const owner = await pendingCustomer(platform)
    const request = await json(await submit(owner.token, upload([{ name: 'id.png', bytes: png }])))
    const other = await createAccount(platform, admin, 'customer')
    const operator = await createAccount(platform, admin, 'operator')
    const path = `/api/v1/registration-requests/${request.id}`
    expect((await platform.request(path, { headers: bearer(owner.token) })).status).toBe(200)
    expect((await platform.request(path, { headers: bearer(admin.token) })).status).toBe(200)
    expect((await platform.request(path, { headers: bearer(other.token) })).status).toBe(404)
    expect((await platform.request(path, { headers: bearer(operator.token) })).status).toBe(404)
    const link = `${path}/documents/${request.documents[0].id}/link`
    expect((await platform.request(link, { headers: bearer(owner.token) })).status).toBe(403)
    expect(
      (await platform.request(`${path}/approve`, { method: 'POST', headers: bearer(operator.token) })).status,
    ).toBe(403)
    expect((await platform.request('/api/v1/registration-requests')).status).toBe(401)
  })

  it('refuses a tampered or re-dated document link', async () => {
    const owner = await pendingCustomer(platform)
    const request = await json(await submit(owner.token, upload([{ name: 'id.png', bytes: png }])))
    const { url } = await json(
      await platform.request(
        `/api/v1/registration-requests/${request.id}/documents/${request.documents[0].id}/link`,
        {
          headers: bearer(admin.token),
        },
      ),
    )
    expect((await platform.request(url)).status).toBe(200)
    const params = new URL(url, 'http://x').searchParams
    const redated = new URLSearchParams(params)
    redated.set('expires', String(Number(params.get('expires')) + 3600))
    expect((await platform.request(`/api/v1/documents/download?${redated}`)).status).toBe(403)
    const otherKey = new URLSearchParams(params)
    otherKey.set('key', `${params.get('key')}x`)
    expect((await platform.request(`/api/v1/documents/download?${otherKey}`)).status).toBe(403)
    const expired = new URLSearchParams(params)
    expired.set('expires', '1000')
    expect((await platform.request(`/api/v1/documents/download?${expired}`)).status).toBe(403)
  })
})

describe('registration requests: roles', () => {
  let platform: TestPlatform
  const tokens: Record<string, string | undefined> = { anonymous: undefined }
  beforeAll(async () => {
    platform = await startTestPlatform(testAdmin)
    const admin = await signInAdmin(platform)
    tokens.admin = admin.token
    tokens.customer = (await createAccount(platform, admin, 'customer')).token
    tokens.operator = (await createAccount(platform, admin, 'operator')).token
    tokens.pending = (await pendingCustomer(platform)).token
  })
  afterAll(async () => {
    await platform?.stop()
  })

  const id = '01a20000-0000-7000-8000-000000000000'
  const routes: [string, string, Record<string, number>][] = [
    [
      'GET',
      '/api/v1/registration-requests',
      { anonymous: 401, pending: 403, customer: 403, operator: 403, admin: 200 },
    ],
    [
      'GET',
      '/api/v1/registration-requests/mine',
      { anonymous: 401, pending: 200, customer: 200, operator: 200, admin: 200 },
    ],
    [
      'GET',
      `/api/v1/registration-requests/${id}`,
      { anonymous: 401, pending: 404, customer: 404, operator: 404, admin: 404 },
    ],
    [
      'GET',
      `/api/v1/registration-requests/${id}/documents/${id}/link`,
      { anonymous: 401, pending: 403, customer: 403, operator: 403, admin: 404 },
    ],
    [
      'POST',
      `/api/v1/registration-requests/${id}/approve`,
      { anonymous: 401, pending: 403, customer: 403, operator: 403, admin: 404 },
    ],
    [
      'POST',
      `/api/v1/registration-requests/${id}/deny`,
      { anonymous: 401, pending: 403, customer: 403, operator: 403, admin: 404 },
    ],
    [
      'POST',
      '/api/v1/registration-requests',
      { anonymous: 401, pending: 400, customer: 400, operator: 403, admin: 403 },
    ],
  ]
  const cases = routes.flatMap(([method, path, expected]) =>
    Object.entries(expected).map(([who, status]) => [who, method, path, status] as const),
  )

  it.each(cases)('%s: %s %s answers %s', async (who, method, path, status) => {
    const token = tokens[who]
    const headers: Record<string, string> = token ? bearer(token) : {}
    let body: FormData | string | undefined
    if (path.endsWith('/deny')) {
      headers['Content-Type'] = 'application/json'
      body = JSON.stringify({ reason: 'not readable' })
    } else if (method === 'POST' && path.endsWith('registration-requests')) {
      body = upload([], 'no documents')
    }
    const res = await platform.request(path, { method, headers, ...(body ? { body } : {}) })
    expect(res.status).toBe(status)
  })
})
