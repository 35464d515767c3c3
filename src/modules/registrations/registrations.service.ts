import { AppError } from '../../shared/errors.ts'
import { decodeCursor, pageOf, uuidv7 } from '../../shared/ids.ts'
import type { Logger } from '../../shared/logger.ts'
import type { DocumentStorage } from '../../shared/storage.ts'
import type { AccountsService } from '../accounts/accounts.service.ts'
import type { RegistrationRequestRecord, RequestStatus, StoredDocumentInfo } from './registrations.model.ts'
import type { RegistrationsRepository } from './registrations.repository.ts'
import { documentTypes, sniffDocumentType } from './sniff.ts'

export type UploadedFile = { name: string; bytes: Uint8Array }

export type RegistrationView = {
  id: string
  user_id: string
  status: RequestStatus
  note: string | null
  documents: { id: string; file_name: string; content_type: string; size: number }[]
  submitted_at: string
  decided_at: string | null
  reason: string | null
}

export type RegistrationsService = ReturnType<typeof createRegistrationsService>

export const documentLimits = { maxFiles: 4, maxBytes: 5 * 1024 * 1024, linkTtlSeconds: 300 }

function view(record: RegistrationRequestRecord): RegistrationView {
  return {
    id: record._id,
    user_id: record.user_id,
    status: record.status,
    note: record.note,
    documents: record.documents.map(({ id, file_name, content_type, size }) => ({
      id,
      file_name,
      content_type,
      size,
    })),
    submitted_at: record.submitted_at.toISOString(),
    decided_at: record.decided_at?.toISOString() ?? null,
    reason: record.reason,
  }
}

const fileProblem = (index: number, reason: string) =>
  new AppError('VALIDATION_FAILED', `Document ${index + 1}: ${reason}`, {
    errors: [{ in: 'form', field: `documents.${index}`, pointer: `/documents/${index}`, reason }],
  })

/**
 * Registration requests: a customer sends identification documents; an admin approves or denies.
 * The account's status follows the decision (pending -> active or denied). Each account has at
 * most one open request, and each request is decided once (both are insert-only claims).
 */
export function createRegistrationsService(deps: {
  repo: RegistrationsRepository
  accounts: Pick<AccountsService, 'applyRegistrationDecision'>
  storage: DocumentStorage
  logger: Logger
}) {
  const { repo, accounts, storage } = deps

  async function findVisible(id: string, viewer: { userId: string; role: string }) {
    const record = await repo.findRequest(id)
    // Someone else's request is "not found", never "forbidden".
    if (!record || (viewer.role !== 'admin' && record.user_id !== viewer.userId)) {
      throw new AppError('NOT_FOUND', 'No such registration request')
    }
    return record
  }

  async function decide(
    id: string,
    adminId: string,
    decision: 'approved' | 'denied',
    reason: string | null,
  ): Promise<RegistrationView> {
    const record = await repo.findRequest(id)
    if (!record) throw new AppError('NOT_FOUND', 'No such registration request')
    let at = new Date()
    if (!(await repo.recordDecision({ _id: id, decision, decided_by: adminId, decided_at: at }))) {
      const earlier = await repo.findDecision(id)
      // The same decision again finishes what a crash may have left undone; another is a conflict.
      if (!earlier || earlier.decision !== decision) {
        throw new AppError('CONFLICT', 'This request has already been decided')
      }
      at = earlier.decided_at
    }
    await repo.markDecided(id, { status: decision, decided_at: at, decided_by: adminId, reason })
    await accounts.applyRegistrationDecision(record.user_id, decision)
    await repo.releaseOpenRequest(record.user_id, id)
    deps.logger.info({ requestId: id, adminId, decision }, 'registration request decided')
    return view({ ...record, status: decision, decided_at: at, decided_by: adminId, reason })
  }

  return {
    async submit(userId: string, files: UploadedFile[], note: string | null): Promise<RegistrationView> {
      if (files.length === 0 || files.length > documentLimits.maxFiles) {
        throw new AppError('VALIDATION_FAILED', `Send 1 to ${documentLimits.maxFiles} documents`, {
          errors: [
            {
              in: 'form',
              field: 'documents',
              pointer: '/documents',
              reason: `1 to ${documentLimits.maxFiles} files`,
            },
          ],
        })
      }
      const typed = files.map((file, index) => {
        if (file.bytes.length === 0) throw fileProblem(index, 'the file is empty')
        if (file.bytes.length > documentLimits.maxBytes) {
          throw new AppError(
            'PAYLOAD_TOO_LARGE',
            `Document ${index + 1} is larger than ${documentLimits.maxBytes} bytes`,
          )
        }
        const type = sniffDocumentType(file.bytes)
        if (!type) throw fileProblem(index, `not a ${documentTypes.join(', ')} file (judged by its content)`)
        return { ...file, type }
      })
      const id = uuidv7()
      if (!(await repo.claimOpenRequest(userId, id))) {
        throw new AppError('CONFLICT', 'There is already a pending registration request for this account')
      }
      try {
        const documents: StoredDocumentInfo[] = []
        for (const file of typed) {
          const documentId = uuidv7()
          const key = `registrations/${id}/${documentId}`
          await storage.put(key, file.bytes, file.type)
          documents.push({
            id: documentId,
            file_name: file.name.slice(0, 200),
            content_type: file.type,
            size: file.bytes.length,
            storage_key: key,
          })
        }
        const record: RegistrationRequestRecord = {
          _id: id,
          user_id: userId,
          status: 'pending',
          note,
          documents,
          submitted_at: new Date(),
          decided_at: null,
          decided_by: null,
          reason: null,
        }
        await repo.insertRequest(record)
        return view(record)
      } catch (error) {
        await repo.releaseOpenRequest(userId, id)
        throw error
      }
    },

    async get(id: string, viewer: { userId: string; role: string }): Promise<RegistrationView> {
      return view(await findVisible(id, viewer))
    },

    async list(query: {
      status?: RequestStatus | undefined
      userId?: string
      limit: number
      cursor?: string | undefined
    }) {
      const page = await repo.list({
        ...(query.status ? { status: query.status } : {}),
        ...(query.userId ? { userId: query.userId } : {}),
        ...(query.cursor ? { after: decodeCursor(query.cursor) } : {}),
        limit: query.limit + 1,
      })
      return pageOf(page, query.limit, view)
    },

    /** A link valid for a few minutes; documents are never public. */
    async documentLink(id: string, documentId: string) {
      const record = await repo.findRequest(id)
      const document = record?.documents.find((d) => d.id === documentId)
      if (!document) throw new AppError('NOT_FOUND', 'No such document')
      return await storage.link(document.storage_key, documentLimits.linkTtlSeconds)
    },

    approve: (id: string, adminId: string) => decide(id, adminId, 'approved', null),
    deny: (id: string, adminId: string, reason: string) => decide(id, adminId, 'denied', reason),
  }
}
