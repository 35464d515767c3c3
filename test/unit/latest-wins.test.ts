import { describe, expect, it } from 'vitest'
import { latestWins } from '../../src/modules/webhooks/webhooks.service.ts'

// The webhook sink's cache of subscriptions is reloaded by overlapping calls (every change made
// here, and a timer); a reload that answers late must not put back an older list.

function deferred<T>() {
  let resolve: (value: T) => void = () => {}
  let reject: (error: Error) => void = () => {}
  const promise = new Promise<T>((ok, fail) => {
    resolve = ok
    reject = fail
  })
  return { promise, resolve, reject }
}

function harness() {
  const loads: ReturnType<typeof deferred<string>>[] = []
  const kept: string[] = []
  const reload = latestWins(
    () => {
      const load = deferred<string>()
      loads.push(load)
      return load.promise
    },
    (value) => kept.push(value),
  )
  return { loads, kept, reload }
}

describe('latestWins', () => {
  it('keeps a later-started load over an earlier one that answers after it', async () => {
    const { loads, kept, reload } = harness()
    const older = reload()
    const newer = reload()
    loads[1]?.resolve('with the new subscription')
    await newer
    loads[0]?.resolve('before the change')
    await older
    expect(kept).toEqual(['with the new subscription'])
  })

  it('keeps each load when they answer in the order they started', async () => {
    const { loads, kept, reload } = harness()
    const first = reload()
    const second = reload()
    loads[0]?.resolve('first')
    await first
    loads[1]?.resolve('second')
    await second
    expect(kept).toEqual(['first', 'second'])
  })

  it('passes a failed load on and keeps what it had', async () => {
    const { loads, kept, reload } = harness()
    const ok = reload()
    loads[0]?.resolve('loaded')
    await ok
    const failed = reload()
    loads[1]?.reject(new Error('database down'))
    await expect(failed).rejects.toThrow('database down')
    const again = reload()
    loads[2]?.resolve('reloaded')
    await again
    expect(kept).toEqual(['loaded', 'reloaded'])
  })
})
