import { access, defineRoute } from '../../http/access.ts'
import { problemResponses } from '../../http/openapi.ts'
import {
  AdminCreateUserSchema,
  AdminUpdateUserSchema,
  UserIdParamSchema,
  UserListQuerySchema,
  UserListSchema,
  UserSchema,
} from './accounts.schemas.ts'

const tags = ['Users']
const admin = access.roles('admin')

export const listUsers = defineRoute(admin, {
  method: 'get',
  path: '/api/v1/users',
  operationId: 'listUsers',
  summary: 'List accounts, oldest first, by role and status',
  tags,
  request: { query: UserListQuerySchema },
  responses: {
    200: { description: 'A page of accounts', content: { 'application/json': { schema: UserListSchema } } },
    ...problemResponses('VALIDATION_FAILED'),
  },
})

export const createUser = defineRoute(admin, {
  method: 'post',
  path: '/api/v1/users',
  operationId: 'createUser',
  summary: 'Create an account of any role, already approved',
  tags,
  request: { body: { required: true, content: { 'application/json': { schema: AdminCreateUserSchema } } } },
  responses: {
    201: { description: 'The account', content: { 'application/json': { schema: UserSchema } } },
    ...problemResponses('VALIDATION_FAILED', 'CONFLICT', 'UNSUPPORTED_MEDIA_TYPE'),
  },
})

export const getUser = defineRoute(admin, {
  method: 'get',
  path: '/api/v1/users/{id}',
  operationId: 'getUser',
  summary: 'One account',
  tags,
  request: { params: UserIdParamSchema },
  responses: {
    200: { description: 'The account', content: { 'application/json': { schema: UserSchema } } },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND'),
  },
})

export const updateUser = defineRoute(admin, {
  method: 'patch',
  path: '/api/v1/users/{id}',
  operationId: 'updateUser',
  summary: 'Change an account: name, phone, role, or disable and enable it',
  description:
    'Disabling an account or changing its role ends its sessions. The last active admin cannot be demoted or disabled.',
  tags,
  request: {
    params: UserIdParamSchema,
    body: { required: true, content: { 'application/json': { schema: AdminUpdateUserSchema } } },
  },
  responses: {
    200: { description: 'The account', content: { 'application/json': { schema: UserSchema } } },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT', 'UNSUPPORTED_MEDIA_TYPE'),
  },
})

export const deleteUser = defineRoute(admin, {
  method: 'delete',
  path: '/api/v1/users/{id}',
  operationId: 'deleteUser',
  summary: 'Delete an account',
  description: 'The last active admin cannot be deleted.',
  tags,
  request: { params: UserIdParamSchema },
  responses: {
    204: { description: 'Deleted' },
    ...problemResponses('VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT'),
  },
})
