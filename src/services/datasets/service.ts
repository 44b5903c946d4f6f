import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { AppError, invalidRequest, notFound } from '../../errors.js';
import { InvalidCursorError } from '../../storage/errors.js';
import type { Dataset, DatasetStatus, DatasetType, Page, Storage } from '../../storage/types.js';
import { parseInput } from '../validation.js';
import { DATASET_LIMITS as L } from './limits.js';
import { badEncoding, byteLength, validateRecords, type RecordError } from './validate.js';

export const newId = (prefix: string) => `${prefix}_${randomBytes(12).toString('hex')}`;

const DatasetFieldsSchema = z.object({
  name: z
    .string({ error: (i) => (i.input === undefined ? 'name is required' : 'name must be a string') })
    .min(1, { error: 'name must be non-empty' })
    .max(L.maxNameChars, { error: `name must be at most ${L.maxNameChars} characters` })
    .refine((s) => s.trim().length > 0 && !badEncoding(s), { error: 'name must be non-blank text' }),
  type: z.enum(['eval_set', 'rag_corpus'], { error: 'type must be "eval_set" or "rag_corpus"' }),
  metadata: z
    .record(z.string(), z.unknown(), { error: 'metadata must be an object' })
    .optional()
    .refine((m) => m === undefined || byteLength(m) <= L.maxDatasetMetadataBytes, {
      error: `metadata must be at most ${L.maxDatasetMetadataBytes} bytes`,
    })
    .refine((m) => m === undefined || depth(m) <= L.maxMetadataDepth, { error: `metadata must be nested at most ${L.maxMetadataDepth} deep` }),
});

function depth(v: unknown): number {
  if (Array.isArray(v)) return 1 + v.reduce<number>((m, x) => Math.max(m, depth(x)), 0);
  if (typeof v === 'object' && v !== null) return 1 + Object.values(v).reduce<number>((m, x) => Math.max(m, depth(x)), 0);
  return 0;
}

export const DatasetListSchema = z.object({
  type: z.enum(['eval_set', 'rag_corpus'], { error: 'type must be "eval_set" or "rag_corpus"' }).optional(),
  status: z.enum(['ready', 'processing', 'failed'], { error: 'status must be ready, processing or failed' }).optional(),
  limit: z.coerce
    .number({ error: 'limit must be a number' })
    .int({ error: 'limit must be an integer' })
    .min(1, { error: 'limit must be between 1 and 100' })
    .max(100, { error: 'limit must be between 1 and 100' })
    .default(20),
  cursor: z.string().max(1000, { error: 'cursor is invalid' }).optional(),
});

export interface CreateDatasetInput {
  name: unknown;
  type: unknown;
  metadata?: unknown;
  /** Raw records (undefined where a file line could not be read; see preErrors). */
  records: unknown[];
  /** Problems the file reader found, already indexed. */
  preErrors?: RecordError[];
}

export interface CreatedDataset {
  dataset: Dataset;
  recordErrors: RecordError[];
}

/** Record errors echoed in a response are capped; the counts are always exact. */
const MAX_REPORTED_ERRORS = 1000;

/** Datasets: upload with record-level validation, listing, reading, deleting. */
export class DatasetService {
  constructor(private readonly storage: Storage) {}

  async create(input: CreateDatasetInput): Promise<CreatedDataset> {
    const fields = parseInput(DatasetFieldsSchema, { name: input.name, type: input.type, metadata: input.metadata ?? undefined });
    if (input.records.length === 0) throw invalidRequest('records must contain at least one record', { field: 'records' });
    if (input.records.length > L.maxRecords) {
      throw invalidRequest(`at most ${L.maxRecords} records per dataset`, { field: 'records', record_count: input.records.length });
    }
    const { accepted, errors } = validateRecords(fields.type, input.records);
    const recordErrors = [...(input.preErrors ?? []), ...errors].sort((a, b) => a.index - b.index);
    if (accepted.length === 0) {
      throw invalidRequest('every record was rejected', {
        field: 'records',
        rejected_records: recordErrors.length,
        accepted_records: 0,
        record_errors: recordErrors.slice(0, MAX_REPORTED_ERRORS),
      });
    }
    const now = new Date().toISOString();
    const dataset: Dataset = {
      id: newId('ds'),
      name: fields.name.trim(),
      type: fields.type,
      status: 'ready',
      recordCount: accepted.length,
      metadata: fields.metadata ?? {},
      error: null,
      createdAt: now,
      updatedAt: now,
    };
    await this.storage.datasets.create(
      dataset,
      accepted.map((r, index) => ({ datasetId: dataset.id, index, recordId: r.recordId, data: r.data })),
    );
    return { dataset, recordErrors };
  }

  async get(id: string): Promise<Dataset> {
    const d = await this.storage.datasets.get(id);
    if (!d) throw notFound(`dataset ${id} not found`, { dataset_id: id });
    return d;
  }

  async list(query: { type?: DatasetType; status?: DatasetStatus; limit: number; cursor?: string }): Promise<Page<Dataset>> {
    try {
      return await this.storage.datasets.list(query);
    } catch (err) {
      if (err instanceof InvalidCursorError) throw invalidRequest('cursor is invalid', { field: 'cursor' });
      throw err;
    }
  }

  /** Deletes a dataset; 409 while a queued or running batch evaluation uses it. */
  async delete(id: string): Promise<void> {
    await this.get(id);
    if (await this.storage.batches.datasetInUse(id)) {
      throw new AppError('conflict', `dataset ${id} is used by a running batch evaluation`, { dataset_id: id });
    }
    if (!(await this.storage.datasets.delete(id))) throw notFound(`dataset ${id} not found`, { dataset_id: id });
  }
}
