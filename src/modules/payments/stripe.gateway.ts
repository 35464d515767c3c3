import Stripe from 'stripe'
import { AppError } from '../../shared/errors.ts'

// The only file that speaks Stripe. Every call that creates something carries a deterministic
// idempotency key, so that a retried request never charges or refunds twice at Stripe.

/**
 * Used with stripe-mock when STRIPE_SECRET_KEY is unset. stripe-mock takes any test key whose part
 * after `sk_test_` is letters and digits only; one with underscores is a 401.
 */
export const STRIPE_MOCK_KEY = 'sk_test_smartparkingstripemock'

export type IntentStatus =
  | 'requires_payment_method'
  | 'requires_confirmation'
  | 'requires_action'
  | 'processing'
  | 'requires_capture'
  | 'canceled'
  | 'succeeded'

export type GatewayIntent = {
  id: string
  status: IntentStatus
  amount: number
  currency: string
  client_secret: string | null
  /** Stripe's message for the last failed attempt, if any. */
  last_error: string | null
}

/** The parts of a verified event the payments service reads. */
export type GatewayEvent = {
  id: string
  type: string
  object: {
    id: string
    object: string
    status?: string | undefined
    payment_intent?: string | null | undefined
    amount_refunded?: number | undefined
    metadata?: Record<string, string> | undefined
  }
}

export type PaymentGateway = {
  createIntent(input: {
    amount: number
    currency: string
    idempotencyKey: string
    metadata: Record<string, string>
  }): Promise<GatewayIntent>
  confirmIntent(id: string, paymentMethod: string | undefined, idempotencyKey: string): Promise<GatewayIntent>
  retrieveIntent(id: string): Promise<GatewayIntent>
  /** Cancels an intent that was not paid; Stripe refuses (422) one that succeeded or is processing. */
  cancelIntent(id: string): Promise<GatewayIntent>
  refund(input: { paymentIntentId: string; amount: number; idempotencyKey: string }): Promise<{ id: string }>
  /** Checks the signature on the raw body; a 400 problem when it is bad, missing or too old. */
  verifyEvent(rawBody: string, signature: string | undefined): GatewayEvent
}

export type StripeSettings = {
  secretKey: string
  /** e.g. https://api.stripe.com, or a stripe-mock's http://127.0.0.1:12111 */
  apiUrl: string
  webhookSecret: string
  /** Signatures older than this are refused (replays). */
  webhookToleranceSeconds: number
  timeoutMs: number
}

function intentOf(intent: Stripe.PaymentIntent): GatewayIntent {
  return {
    id: intent.id,
    status: intent.status as IntentStatus,
    amount: intent.amount,
    currency: intent.currency.toUpperCase(),
    client_secret: intent.client_secret,
    last_error: intent.last_payment_error?.message ?? null,
  }
}

/** Stripe's failures in our words: unreachable is a 503, a declined card a 402, the rest a 422. */
function translate(error: unknown): never {
  if (error instanceof Stripe.errors.StripeCardError) {
    throw new AppError('PAYMENT_REQUIRED', `The card was declined: ${error.message}`, {
      extensions: { decline_code: error.decline_code ?? error.code ?? null },
    })
  }
  if (
    error instanceof Stripe.errors.StripeConnectionError ||
    // The same idempotency key still at work in another call: its outcome is not known yet.
    error instanceof Stripe.errors.StripeIdempotencyError ||
    error instanceof Stripe.errors.StripeAPIError ||
    error instanceof Stripe.errors.StripeRateLimitError ||
    error instanceof Stripe.errors.StripeAuthenticationError
  ) {
    throw new AppError('DEPENDENCY_UNAVAILABLE', 'The payment provider is unavailable; retry shortly', {
      headers: { 'Retry-After': '5' },
      extensions: { dependency: 'stripe' },
    })
  }
  if (
    error instanceof Stripe.errors.StripeInvalidRequestError ||
    error instanceof Stripe.errors.StripeError
  ) {
    throw new AppError('UNPROCESSABLE', `The payment provider refused: ${error.message}`, {
      extensions: { reason: 'provider_refused' },
    })
  }
  throw error
}

export function createStripeGateway(settings: StripeSettings): PaymentGateway {
  const url = new URL(settings.apiUrl)
  const stripe = new Stripe(settings.secretKey, {
    host: url.hostname,
    port: url.port || (url.protocol === 'http:' ? 80 : 443),
    protocol: url.protocol === 'http:' ? 'http' : 'https',
    maxNetworkRetries: 1,
    timeout: settings.timeoutMs,
    telemetry: false,
  })
  const call = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work()
    } catch (error) {
      translate(error)
    }
  }
  return {
    createIntent: (input) =>
      call(async () =>
        intentOf(
          await stripe.paymentIntents.create(
            {
              amount: input.amount,
              currency: input.currency.toLowerCase(),
              metadata: input.metadata,
              automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
            },
            { idempotencyKey: input.idempotencyKey },
          ),
        ),
      ),
    confirmIntent: (id, paymentMethod, idempotencyKey) =>
      call(async () =>
        intentOf(
          await stripe.paymentIntents.confirm(
            id,
            paymentMethod === undefined ? {} : { payment_method: paymentMethod },
            { idempotencyKey },
          ),
        ),
      ),
    retrieveIntent: (id) => call(async () => intentOf(await stripe.paymentIntents.retrieve(id))),
    cancelIntent: (id) =>
      call(async () =>
        intentOf(await stripe.paymentIntents.cancel(id, {}, { idempotencyKey: `cancel:${id}` })),
      ),
    refund: (input) =>
      call(async () => {
        const refund = await stripe.refunds.create(
          { payment_intent: input.paymentIntentId, amount: input.amount },
          { idempotencyKey: input.idempotencyKey },
        )
        return { id: refund.id }
      }),
    verifyEvent(rawBody, signature) {
      const refuse = (reason: string) =>
        new AppError('VALIDATION_FAILED', `The Stripe signature ${reason}`, {
          errors: [{ in: 'header', field: 'stripe-signature', pointer: '', reason }],
        })
      if (!signature) throw refuse('is missing')
      let event: Stripe.Event
      try {
        event = stripe.webhooks.constructEvent(
          rawBody,
          signature,
          settings.webhookSecret,
          settings.webhookToleranceSeconds,
        )
      } catch (error) {
        const message = (error as Error).message
        throw refuse(/timestamp outside the tolerance/i.test(message) ? 'is too old' : 'does not verify')
      }
      const object = event.data.object as unknown as GatewayEvent['object']
      return { id: event.id, type: event.type, object }
    },
  }
}
