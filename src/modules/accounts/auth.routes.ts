import { z } from '@hono/zod-openapi'
import { access, defineRoute } from '../../http/access.ts'
import { jsonBody, jsonResponse, problemResponses } from '../../http/openapi.ts'
import {
  JwksSchema,
  PasswordChangeSchema,
  ProfileUpdateSchema,
  RefreshSchema,
  RegisterSchema,
  SessionSchema,
  TokenPairSchema,
  UserSchema,
} from './accounts.schemas.ts'

const tags = ['Auth']

export const register = defineRoute(access.public, {
  method: 'post',
  path: '/api/v1/auth/register',
  operationId: 'register',
  summary: 'Create a customer account and sign in',
  description:
    'The password needs 10 to 128 characters, not a well-known one, not the e-mail. When ACCOUNT_APPROVAL_REQUIRED is on, the account starts `pending`: it may sign in, manage its profile and submit a registration request, nothing else until an admin approves it.',
  tags,
  request: { body: jsonBody(RegisterSchema) },
  responses: {
    201: jsonResponse(SessionSchema, 'The account and its first tokens'),
    ...problemResponses('VALIDATION_FAILED', 'CONFLICT', 'UNSUPPORTED_MEDIA_TYPE', 'PAYLOAD_TOO_LARGE'),
  },
})

export const login = defineRoute(access.public, {
  method: 'post',
  path: '/api/v1/auth/login',
  operationId: 'login',
  summary: 'Sign in with e-mail and password',
  description:
    'Takes JSON (`email`, `password`) or the OAuth2 password form (`username=...&password=...`). An unknown e-mail and a wrong password answer alike. Failures are limited per account and per client address (429 with Retry-After).',
  tags,
  request: {
    // Schemas by reference: the handler validates whichever media type arrived.
    body: {
      required: true,
      content: {
        'application/json': { schema: { $ref: '#/components/schemas/LoginRequest' } },
        'application/x-www-form-urlencoded': { schema: { $ref: '#/components/schemas/LoginForm' } },
      },
    },
  },
  responses: {
    200: jsonResponse(SessionSchema, 'Tokens for the account'),
    ...problemResponses('VALIDATION_FAILED', 'UNAUTHENTICATED', 'RATE_LIMITED', 'UNSUPPORTED_MEDIA_TYPE'),
  },
})

export const refresh = defineRoute(access.public, {
  method: 'post',
  path: '/api/v1/auth/refresh',
  operationId: 'refreshTokens',
  summary: 'Trade a refresh token for a new token pair',
  description:
    'Each refresh token works once. Presenting one a second time revokes every token of that sign-in (the legitimate holder signs in again).',
  tags,
  request: { body: jsonBody(RefreshSchema) },
  responses: {
    200: jsonResponse(TokenPairSchema, 'A new pair; the old refresh token is spent'),
    ...problemResponses('VALIDATION_FAILED', 'UNAUTHENTICATED', 'UNSUPPORTED_MEDIA_TYPE'),
  },
})

export const logout = defineRoute(access.anyAccount, {
  method: 'post',
  path: '/api/v1/auth/logout',
  operationId: 'logout',
  summary: 'Sign out: revoke this access token and its refresh tokens',
  tags,
  responses: { 204: { description: 'Signed out' }, ...problemResponses() },
})

export const me = defineRoute(access.anyAccount, {
  method: 'get',
  path: '/api/v1/auth/me',
  operationId: 'getMe',
  summary: 'The signed-in account',
  tags,
  responses: { 200: jsonResponse(UserSchema, 'The account'), ...problemResponses() },
})

export const updateMe = defineRoute(access.anyAccount, {
  method: 'patch',
  path: '/api/v1/auth/me',
  operationId: 'updateMe',
  summary: 'Change the name or phone of the signed-in account',
  tags,
  request: { body: jsonBody(ProfileUpdateSchema) },
  responses: {
    200: jsonResponse(UserSchema, 'The updated account'),
    ...problemResponses('VALIDATION_FAILED', 'UNSUPPORTED_MEDIA_TYPE'),
  },
})

export const changePassword = defineRoute(access.anyAccount, {
  method: 'post',
  path: '/api/v1/auth/password',
  operationId: 'changePassword',
  summary: 'Change the password; every other session ends',
  tags,
  request: { body: jsonBody(PasswordChangeSchema) },
  responses: {
    200: jsonResponse(TokenPairSchema, 'A new pair for this session'),
    ...problemResponses('VALIDATION_FAILED', 'UNSUPPORTED_MEDIA_TYPE'),
  },
})

export const jwks = defineRoute(access.public, {
  method: 'get',
  path: '/api/v1/auth/jwks',
  operationId: 'getJwks',
  summary: 'Public keys that verify access tokens (JWKS)',
  description: 'Keys rotate; a retired key stays here until the last token it signed has expired.',
  tags,
  responses: { 200: jsonResponse(JwksSchema, 'The JSON Web Key Set'), ...problemResponses() },
})

export const rotateKeys = defineRoute(access.roles('admin'), {
  method: 'post',
  path: '/api/v1/auth/keys/rotate',
  operationId: 'rotateSigningKey',
  summary: 'Start signing with a new key',
  description: 'Tokens signed by the previous key stay valid until they expire; nobody is signed out.',
  tags,
  responses: {
    200: jsonResponse(z.object({ kid: z.string() }).openapi('RotatedKey'), 'The new key id'),
    ...problemResponses(),
  },
})
