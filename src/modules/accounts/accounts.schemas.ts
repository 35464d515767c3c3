import { z } from '@hono/zod-openapi'
import { PageQuerySchema, pageSchema } from '../../http/openapi.ts'
import { accountStatuses, roles } from './accounts.model.ts'

// A plain pattern rather than a format, so that the document states exactly what is accepted.
const email = z
  .string()
  .max(254)
  .regex(
    /^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/,
    'an e-mail address',
  )
  .openapi({ example: 'driver@example.com' })
const password = z.string().min(1).max(128).openapi({ example: 'correct horse battery staple' })
/** A new password: length here; the well-known-password and e-mail checks in the service. */
const newPassword = z.string().min(10).max(128).openapi({ example: 'correct horse battery staple' })
// A visible character somewhere: the value is trimmed, and a name of blanks would end up empty.
const fullName = z
  .string()
  .max(200)
  .regex(/\S/, 'a name: at least one visible character')
  .trim()
  .openapi({ example: 'Jane Driver' })
const phone = z
  .string()
  .regex(
    /^\+?[0-9 ()-]{6,20}$/,
    'a phone number: digits, spaces, dashes and brackets, optionally starting with +',
  )
  .openapi({ example: '+1234567890' })

export const RegisterSchema = z
  .strictObject({ email, password: newPassword, full_name: fullName, phone: phone.optional() })
  .openapi('RegisterRequest')

export const LoginJsonSchema = z.strictObject({ email, password }).openapi('LoginRequest')

/** The OAuth2 password grant form, as FastAPI clients send it (seed 004). */
export const LoginFormSchema = z
  .strictObject({
    username: email,
    password,
    grant_type: z.literal('password').optional(),
    scope: z.string().max(200).optional(),
    client_id: z.string().max(200).optional(),
    client_secret: z.string().max(200).optional(),
  })
  .openapi('LoginForm')

export const RefreshSchema = z
  .strictObject({ refresh_token: z.string().min(20).max(200) })
  .openapi('RefreshRequest')

export const UserSchema = z
  .object({
    id: z.string().openapi({ example: '0193a5c2-7f1e-7b3c-9a41-2f0c8e1d4b6a' }),
    email: z.string(),
    full_name: z.string(),
    phone: z.string().nullable(),
    role: z.enum(roles),
    status: z.enum(accountStatuses),
    created_at: z.iso.datetime(),
    updated_at: z.iso.datetime(),
  })
  .openapi('User')

export const TokenPairSchema = z
  .object({
    access_token: z.string(),
    token_type: z.literal('Bearer'),
    expires_in: z.int().openapi({ description: 'Seconds until the access token expires.' }),
    refresh_token: z.string().openapi({ description: 'Opaque; single use: each refresh returns a new one.' }),
    refresh_expires_at: z.iso.datetime(),
  })
  .openapi('TokenPair')

// Not 'Session': that component name is the parking session's (sessions.schemas.ts); two schemas
// of one name make every reference to it point at the first one registered.
export const SessionSchema = TokenPairSchema.extend({ user: UserSchema }).openapi('AuthSession')

export const ProfileUpdateSchema = z
  .strictObject({ full_name: fullName.optional(), phone: phone.nullable().optional() })
  .openapi('ProfileUpdate', { description: 'Only the fields sent change; an empty object changes nothing.' })

export const PasswordChangeSchema = z
  .strictObject({ current_password: password, new_password: newPassword })
  .openapi('PasswordChange')

export const JwksSchema = z
  .object({
    keys: z.array(
      z.object({
        kty: z.literal('EC'),
        crv: z.string(),
        x: z.string(),
        y: z.string(),
        kid: z.string(),
        alg: z.string(),
        use: z.literal('sig'),
      }),
    ),
  })
  .openapi('JSONWebKeySet')

export const UserIdParamSchema = z.object({ id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }) })

export const UserListQuerySchema = PageQuerySchema.extend({
  role: z.enum(roles).optional(),
  status: z.enum(accountStatuses).optional(),
})

export const UserListSchema = pageSchema(UserSchema, 'UserList')

export const AdminCreateUserSchema = z
  .strictObject({
    email,
    password: newPassword,
    full_name: fullName,
    phone: phone.optional(),
    role: z.enum(roles),
  })
  .openapi('AdminCreateUser')

export const AdminUpdateUserSchema = z
  .strictObject({
    full_name: fullName.optional(),
    phone: phone.nullable().optional(),
    role: z.enum(roles).optional(),
    status: z.enum(['active', 'disabled']).optional(),
  })
  .openapi('AdminUpdateUser', {
    description: 'Only the fields sent change; an empty object changes nothing.',
  })
