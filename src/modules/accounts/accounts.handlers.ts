import type { OpenAPIHono } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { principalOf } from '../../http/access.ts'
import { clientAddress } from '../../http/client-address.ts'
import type { AppEnv } from '../../http/context.ts'
import { parseOrThrow } from '../../http/validation.ts'
import { AppError } from '../../shared/errors.ts'
import { LoginFormSchema, LoginJsonSchema } from './accounts.schemas.ts'
import * as auth from './auth.routes.ts'
import * as users from './users.routes.ts'

/** JSON {email, password} or the OAuth2 password form, validated by the same rules as every body. */
async function loginCredentials(c: Context<AppEnv>): Promise<{ email: string; password: string }> {
  const type = c.req.header('content-type') ?? ''
  if (/^application\/json\b/i.test(type)) {
    const body = await c.req.json().catch(() => {
      throw new AppError('MALFORMED_REQUEST', 'The body is not valid JSON')
    })
    return parseOrThrow(LoginJsonSchema, body, 'body')
  }
  if (/^application\/x-www-form-urlencoded\b/i.test(type)) {
    const form = parseOrThrow(LoginFormSchema, await c.req.parseBody(), 'form')
    return { email: form.username, password: form.password }
  }
  throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send application/json or application/x-www-form-urlencoded')
}

export function mountAccounts(app: OpenAPIHono<AppEnv>, options: { trustProxy: boolean }) {
  app.openapi(auth.register, async (c) => {
    const { user, tokens } = await c.var.services.accounts.register(c.req.valid('json'))
    return c.json({ ...tokens, user }, 201)
  })

  app.openAPIRegistry.register('LoginRequest', LoginJsonSchema)
  app.openAPIRegistry.register('LoginForm', LoginFormSchema)
  app.openapi(auth.login, async (c) => {
    const { email, password } = await loginCredentials(c)
    const { user, tokens } = await c.var.services.accounts.login(
      email,
      password,
      clientAddress(c, options.trustProxy),
    )
    return c.json({ ...tokens, user }, 200)
  })

  app.openapi(auth.refresh, async (c) => {
    return c.json(await c.var.services.accounts.refresh(c.req.valid('json').refresh_token), 200)
  })

  app.openapi(auth.logout, async (c) => {
    await c.var.services.accounts.logout(principalOf(c).claims)
    return c.body(null, 204)
  })

  app.openapi(auth.me, async (c) => c.json(await c.var.services.accounts.me(principalOf(c).userId), 200))

  app.openapi(auth.updateMe, async (c) =>
    c.json(await c.var.services.accounts.updateProfile(principalOf(c).userId, c.req.valid('json')), 200),
  )

  app.openapi(auth.changePassword, async (c) => {
    const body = c.req.valid('json')
    const tokens = await c.var.services.accounts.changePassword(
      principalOf(c).claims,
      body.current_password,
      body.new_password,
    )
    return c.json(tokens, 200)
  })

  app.openapi(auth.jwks, async (c) => {
    c.header('Cache-Control', 'public, max-age=300')
    return c.json(await c.var.services.tokens.jwks(), 200)
  })

  app.openapi(auth.rotateKeys, async (c) => c.json({ kid: await c.var.services.tokens.rotateKey() }, 200))

  app.openapi(users.listUsers, async (c) =>
    c.json(await c.var.services.accounts.admin.list(c.req.valid('query')), 200),
  )

  app.openapi(users.createUser, async (c) =>
    c.json(await c.var.services.accounts.admin.create(c.req.valid('json')), 201),
  )

  app.openapi(users.getUser, async (c) =>
    c.json(await c.var.services.accounts.admin.get(c.req.valid('param').id), 200),
  )

  app.openapi(users.updateUser, async (c) =>
    c.json(
      await c.var.services.accounts.admin.update(
        principalOf(c).userId,
        c.req.valid('param').id,
        c.req.valid('json'),
      ),
      200,
    ),
  )

  app.openapi(users.deleteUser, async (c) => {
    await c.var.services.accounts.admin.remove(principalOf(c).userId, c.req.valid('param').id)
    return c.body(null, 204)
  })
}
