/** Parsed JSON for assertions; tests check its shape with expect(). */
// biome-ignore lint/suspicious/noExplicitAny: assertions read arbitrary JSON
export type Json = any

export async function json(res: Response): Promise<Json> {
  return await res.json()
}
