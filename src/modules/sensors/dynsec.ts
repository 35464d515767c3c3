import { randomUUID } from 'node:crypto'
import { DependencyDown } from '../../shared/errors.ts'
import type { BrokerClient } from '../../shared/mqtt.ts'
import { withTimeout } from '../../shared/timeout.ts'
import { sensorTopics } from '../occupancy/occupancy.contract.ts'

// Per-device broker credentials through Mosquitto's dynamic-security plugin, driven over MQTT by
// the platform's own broker client (the plugin's admin user). Commands go to the control topic;
// answers come back on the response topic to every subscriber, so each command carries a
// correlation id of ours and answers to other instances' commands are ignored.

const controlTopic = '$CONTROL/dynamic-security/v1'
const responseTopic = `${controlTopic}/response`

type Command = { command: string } & Record<string, unknown>
type Answer = { command: string; error?: string; data?: unknown; correlationData?: string }

/** What the sensors capability needs from the broker's account store. */
export type BrokerAccounts = {
  /**
   * Creates the device's role (publish under its own topics only) and its client (username and
   * client id = device id), or, when they exist (a retry, a rotation), sets the password, client
   * id, role and ACL again. A device connected with the old password is disconnected.
   */
  provisionDevice(deviceId: string, password: string): Promise<void>
  /** Deletes the client and the role; a connected device is disconnected at once. Idempotent. */
  removeDevice(deviceId: string): Promise<void>
}

export const deviceRole = (deviceId: string) => `device:${deviceId}`

export function createDynsecAccounts(
  broker: BrokerClient,
  options: { timeoutMs?: number } = {},
): BrokerAccounts {
  const timeoutMs = options.timeoutMs ?? 5_000
  const waiting = new Map<string, (answer: Answer) => void>()
  let subscribed: Promise<void> | undefined

  broker.on('message', (topic, payload) => {
    if (topic !== responseTopic) return
    let answers: unknown
    try {
      answers = (JSON.parse(payload.toString('utf8')) as { responses?: unknown }).responses
    } catch {
      return
    }
    if (!Array.isArray(answers)) return
    for (const answer of answers as Answer[]) {
      if (typeof answer?.correlationData === 'string') waiting.get(answer.correlationData)?.(answer)
    }
  })

  /** Once per client; mqtt.js subscribes again by itself after a reconnect. */
  function subscribe(): Promise<void> {
    subscribed ??= broker.subscribeAsync(responseTopic, { qos: 1 }).then(
      (granted) => {
        if (granted.some((grant) => grant.qos >= 128)) {
          throw new DependencyDown('the broker refused the dynamic-security response topic')
        }
      },
      (error: unknown) => {
        subscribed = undefined
        throw error
      },
    )
    return subscribed
  }

  async function run(commands: Command[]): Promise<Answer[]> {
    // A command queued while offline would be applied later, out of order with newer ones.
    if (!broker.connected) throw new DependencyDown('the MQTT broker is not connected')
    const ids = commands.map(() => randomUUID())
    const answers = ids.map((id) => new Promise<Answer>((resolve) => waiting.set(id, resolve)))
    try {
      return await withTimeout(
        (async () => {
          await subscribe()
          const body = { commands: commands.map((command, i) => ({ ...command, correlationData: ids[i] })) }
          await broker.publishAsync(controlTopic, JSON.stringify(body), { qos: 1 })
          return await Promise.all(answers)
        })(),
        timeoutMs,
        'a dynamic-security command to the MQTT broker',
      )
    } catch (error) {
      if (error instanceof DependencyDown) throw error
      throw new DependencyDown(
        `the MQTT broker did not take a dynamic-security command: ${(error as Error).message}`,
      )
    } finally {
      for (const id of ids) waiting.delete(id)
    }
  }

  function refused(answer: Answer): never {
    throw new DependencyDown(`the MQTT broker refused ${answer.command}: ${answer.error}`)
  }

  const exists = (answer: Answer | undefined) =>
    answer?.error !== undefined && /already exists/i.test(answer.error)
  const missing = (answer: Answer | undefined) =>
    answer?.error !== undefined && /not found/i.test(answer.error)

  return {
    async provisionDevice(deviceId, password) {
      const rolename = deviceRole(deviceId)
      const role = {
        rolename,
        acls: [
          { acltype: 'publishClientSend', topic: sensorTopics.deviceAcl(deviceId), priority: 0, allow: true },
        ],
      }
      const client = {
        username: deviceId,
        password,
        clientid: deviceId,
        roles: [{ rolename, priority: 0 }],
      }
      const created = await run([
        { command: 'createRole', ...role },
        { command: 'createClient', ...client },
      ])
      const repairs: Command[] = []
      for (const [answer, repair] of [
        [created[0], { command: 'modifyRole', ...role }],
        [created[1], { command: 'modifyClient', ...client }],
      ] as const) {
        if (answer?.error === undefined) continue
        if (!exists(answer)) refused(answer)
        repairs.push(repair)
      }
      if (repairs.length === 0) return
      for (const answer of await run(repairs)) if (answer.error !== undefined) refused(answer)
    },

    async removeDevice(deviceId) {
      const answers = await run([
        { command: 'deleteClient', username: deviceId },
        { command: 'deleteRole', rolename: deviceRole(deviceId) },
      ])
      for (const answer of answers) if (answer.error !== undefined && !missing(answer)) refused(answer)
    },
  }
}
