import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { renderEnvExample, withConfigTable } from '../../scripts/config-docs.ts'
import { ConfigError, configSchema, loadConfig } from '../../src/config.ts'

const root = new URL('../../', import.meta.url)

describe('configuration', () => {
  it('runs on defaults with nothing set', () => {
    const config = loadConfig({})
    expect(config.PORT).toBe(3000)
    expect(config.HOST).toBe('127.0.0.1')
    expect(config.MONGODB_URI).toBeUndefined()
    expect(config.MIGRATE_ON_START).toBe(true)
    expect(config.CORS_ORIGINS).toEqual([])
    expect(config.paths.documents).toBe(`${config.paths.data}/documents`)
  })

  it('lists every problem at once, naming the key, the reason and the value', () => {
    let error: unknown
    try {
      loadConfig({
        PORT: 'eighty',
        LOG_LEVEL: 'loud',
        MONGODB_URI: 'http://x',
        CORS_ORIGINS: 'https://ok.example,nope',
        S3_ACCESS_KEY_ID: 'key-without-secret',
      })
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(ConfigError)
    const problems = (error as ConfigError).problems
    expect(problems).toHaveLength(5)
    expect(problems.some((p) => p.includes('set both or neither'))).toBe(true)
    expect(problems.find((p) => p.startsWith('PORT:'))).toContain('"eighty"')
    expect(problems.find((p) => p.startsWith('LOG_LEVEL:'))).toContain('"loud"')
    expect(problems.some((p) => p.startsWith('MONGODB_URI:'))).toBe(true)
    expect(problems.some((p) => p.startsWith('CORS_ORIGINS:'))).toBe(true)
    expect((error as ConfigError).message).toContain('Invalid configuration')
  })

  it('treats an empty assignment as unset and parses lists and booleans', () => {
    const config = loadConfig({
      MONGODB_URI: '',
      CORS_ORIGINS: ' https://a.example , https://b.example ',
      MIGRATE_ON_START: 'false',
    })
    expect(config.MONGODB_URI).toBeUndefined()
    expect(config.CORS_ORIGINS).toEqual(['https://a.example', 'https://b.example'])
    expect(config.MIGRATE_ON_START).toBe(false)
  })

  it('wants the S3 access key and secret together', () => {
    expect(() => loadConfig({ S3_BUCKET: 'docs', S3_ACCESS_KEY_ID: 'key' })).toThrow(/set both or neither/)
    expect(
      loadConfig({ S3_BUCKET: 'docs', S3_ACCESS_KEY_ID: 'key', S3_SECRET_ACCESS_KEY: 'secret' }).S3_BUCKET,
    ).toBe('docs')
    expect(() => loadConfig({ S3_BUCKET: 'Not_A_Bucket' })).toThrow(/S3_BUCKET/)
  })

  it('takes CORS origins only, not URLs with paths', () => {
    expect(() => loadConfig({ CORS_ORIGINS: 'https://console.example/app' })).toThrow(/an origin/)
    expect(loadConfig({ CORS_ORIGINS: 'http://localhost:5173' }).CORS_ORIGINS).toEqual([
      'http://localhost:5173',
    ])
  })

  it('rejects a metrics token too short to be a secret', () => {
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN/)
  })

  it.each(Object.keys(configSchema.shape))('describes %s', (key) => {
    expect(configSchema.shape[key as keyof typeof configSchema.shape].description?.length).toBeGreaterThan(10)
  })

  it('.env.example and the README table match the schema (npm run config:docs)', () => {
    expect(readFileSync(new URL('.env.example', root), 'utf8')).toBe(renderEnvExample())
    const readme = readFileSync(new URL('README.md', root), 'utf8')
    expect(readme).toBe(withConfigTable(readme))
  })
})
