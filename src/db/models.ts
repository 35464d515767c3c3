import type { ModelRegistration } from '../shared/mongo.ts'

/**
 * Every capability's models, created with their indexes at start before traffic. Each
 * capability adds its registration here as it lands (accounts, facilities, sessions, ...).
 */
export const modelRegistrations: readonly ModelRegistration[] = []
