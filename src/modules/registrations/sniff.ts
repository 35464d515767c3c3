/**
 * The content type of an uploaded document, decided by its first bytes, never by the header the
 * client sent: a renamed executable stays refused whatever it claims to be.
 */
export type DocumentType = 'application/pdf' | 'image/png' | 'image/jpeg' | 'image/webp'

const signatures: { type: DocumentType; matches: (b: Uint8Array) => boolean }[] = [
  { type: 'application/pdf', matches: (b) => ascii(b, 0, 5) === '%PDF-' },
  {
    type: 'image/png',
    matches: (b) => [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((byte, i) => b[i] === byte),
  },
  { type: 'image/jpeg', matches: (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff },
  { type: 'image/webp', matches: (b) => ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP' },
]

function ascii(bytes: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...bytes.subarray(from, to))
}

export function sniffDocumentType(bytes: Uint8Array): DocumentType | undefined {
  return signatures.find((signature) => signature.matches(bytes))?.type
}

export const documentTypes: readonly DocumentType[] = signatures.map((s) => s.type)
