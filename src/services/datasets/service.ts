import { z } from 'zod';
import { AppError, invalidRequest, notFound } from '../../errors.js';
import { itemCursor, itemPosition, keysetPage } from '../../storage/cursor.js';
import { DATASET_STATUSES, DATASET_TYPES, type Dataset, type DatasetRecord, type DatasetType, type Storage } from '../../storage/types.js';
import { oneOf } from '../fields.js';
import { newId } from '../ids.js';
import { pageFields, type Page, type PageQuery } from '../paging.js';
import { DATASET_LIMITS as L } from './limits.js';
import { formatOf, parseFile, type FileFormat, type ParsedFile } from './parse.js';
import { badEncoding, byteLength, nestedDeeperThan, validateRecords, type RecordError } from './validate.js';

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A dataset's own fields (POST /v1/datasets, GraphQL createDataset), which
 * each surface validates, naming fields its own way; the records are the
 * service's to validate one by one.
 */
export const DatasetFieldsSchema = z.object({
  name: z
    .string({ error: (i) => (i.input === undefined ? 'name is required' : 'name must be a string') })
    .min(1, { error: 'name must be non-empty' })
    .max(L.maxNameChars, { error: `name must be at most ${L.maxNameChars} characters` })
    .refine((s) => s.trim().length > 0 && !badEncoding(s), { error: 'name must be non-blank text' }),
  type: oneOf('type', DATASET_TYPES),
  // The object as sent (z.record would copy it and drop a `__proto__` key: data, here, like any other).
  metadata: z
    .custom<Record<string, unknown>>(isPlainObject, { error: 'metadata must be an object' })
    .optional()
    // Depth first, and stop there when it fails: the size check serializes the value recursively.
    .refine((m) => m === undefined || !nestedDeeperThan(m, L.maxMetadataDepth), {
      error: `metadata must be nested at most ${L.maxMetadataDepth} deep`,
      abort: true,
    })
    .refine((m) => m === undefined || byteLength(m) <= L.maxDatasetMetadataBytes, {
      error: `metadata must be at most ${L.maxDatasetMetadataBytes} bytes`,
    }),
});

/** GET /v1/datasets and GraphQL `datasets`: filters and a page. */
export const DatasetListSchema = z.object({
  type: oneOf('type', DATASET_TYPES).optional(),
  status: oneOf('status', DATASET_STATUSES).optional(),
  ...pageFields,
});
export type DatasetListQuery = z.infer<typeof DatasetListSchema>;

export type DatasetFields = z.infer<typeof DatasetFieldsSchema>;

/** An upload: its validated fields and its records, unvalidated. */
export interface CreateDatasetInput {
  fields: DatasetFields;
  /** The records, from a JSON body or GraphQL; or else */
  records?: unknown[];
  /** a file to read them from (multipart), by its name's extension. */
  file?: { filename: string; bytes: Buffer };
}

export interface CreatedDataset {
  dataset: Dataset;
  /** The index a rag_corpus upload started building (services/rag); null for other datasets. */
  indexId: string | null;
  /** The first MAX_REPORTED_ERRORS rejected records, in record order. */
  recordErrors: RecordError[];
  /** How many records were rejected in all. */
  rejectedRecords: number;
}

/** The database datasets, evaluations and batch runs live in, as the health report shows it. */
export interface DatabaseReport {
  kind: Storage['kind'];
  /** ok: a read answered within DATABASE_PROBE_MS; unavailable: it failed or took longer. */
  state: 'ok' | 'unavailable';
  /** Milliseconds the read took; null when it did not answer in time. */
  latencyMs: number | null;
  reason: string | null;
}

/** How long the database's health read may take before it counts as unavailable. */
export const DATABASE_PROBE_MS = 2000;

/** Record errors echoed in a response are capped; the count is always exact. */
export const MAX_REPORTED_ERRORS = 1000;

/** The records of an upload: a file read by its format, or the records given (which must be an array). */
async function readRecords(input: CreateDatasetInput, format: FileFormat | undefined, type: DatasetType): Promise<ParsedFile> {
  if (input.file && format) return parseFile(format, input.file.bytes, type);
  if (!Array.isArray(input.records)) {
    throw invalidRequest(input.records === undefined ? 'records is required' : 'records must be an array', { field: 'records' });
  }
  return { records: input.records, errors: [] };
}

/**
 * What indexes corpora (services/rag), as the dataset service sees it: told
 * of each new rag_corpus dataset, and asked to remove a dataset's indexes
 * before the dataset goes.
 */
export interface CorpusIndexer {
  /** Starts building the new corpus's index; returns the index id. */
  indexCorpus(dataset: Dataset): Promise<string>;
  /** Deletes every index of the dataset (none is building: delete checks that first). */
  deleteIndexesOf(datasetId: string): Promise<void>;
}

/** Datasets: upload with record-level validation, listing, reading, deleting. */
export class DatasetService {
  constructor(
    private readonly storage: Storage,
    private readonly indexer?: CorpusIndexer,
  ) {}

  async create(input: CreateDatasetInput): Promise<CreatedDataset> {
    const format = input.file ? formatOf(input.file.filename) : undefined;
    if (format === null) throw invalidRequest('file must be .jsonl, .csv or .txt', { field: 'file' });
    const { fields } = input;
    const parsed = await readRecords(input, format, fields.type);
    if (parsed.records.length === 0) throw invalidRequest('records must contain at least one record', { field: 'records' });
    if (parsed.records.length > L.maxRecords) {
      throw invalidRequest(`at most ${L.maxRecords} records per dataset`, { field: 'records', record_count: parsed.records.length });
    }
    const { accepted, errors } = await validateRecords(fields.type, parsed.records);
    const recordErrors = [...parsed.errors, ...errors].sort((a, b) => a.index - b.index);
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
    const indexId = dataset.type === 'rag_corpus' && this.indexer ? await this.indexer.indexCorpus(dataset) : null;
    return { dataset, indexId, recordErrors: recordErrors.slice(0, MAX_REPORTED_ERRORS), rejectedRecords: recordErrors.length };
  }

  async get(id: string): Promise<Dataset> {
    const d = await this.storage.datasets.get(id);
    if (!d) throw notFound(`dataset ${id} not found`, { dataset_id: id });
    return d;
  }

  /** The database: one small read (a page of one dataset), timed. */
  async database(): Promise<DatabaseReport> {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.storage.datasets.list({ limit: 1 }),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${DATABASE_PROBE_MS} ms`)), DATABASE_PROBE_MS);
        }),
      ]);
      return { kind: this.storage.kind, state: 'ok', latencyMs: Math.round((performance.now() - started) * 10) / 10, reason: null };
    } catch (err) {
      return { kind: this.storage.kind, state: 'unavailable', latencyMs: null, reason: err instanceof Error ? err.message : String(err) };
    } finally {
      clearTimeout(timer);
    }
  }

  /** A dataset's accepted records in upload order, a page at a time (not_found for an unknown dataset). */
  async records(id: string, { limit, cursor }: PageQuery): Promise<Page<DatasetRecord>> {
    await this.get(id);
    const after = cursor === undefined ? -1 : itemCursor.decode(cursor).index;
    const rows = await this.storage.datasets.records(id, after, limit + 1);
    return keysetPage(rows, limit, (r) => r, itemCursor, itemPosition);
  }

  /** A page of datasets, newest first. */
  async list(query: DatasetListQuery): Promise<Page<Dataset>> {
    return this.storage.datasets.list(query);
  }

  /**
   * Deletes a dataset with its records and its RAG indexes; 409 while a
   * queued or running batch evaluation uses it, or one of its indexes is
   * still building.
   */
  async delete(id: string): Promise<void> {
    await this.get(id);
    if (await this.storage.batches.datasetInUse(id)) {
      throw new AppError('conflict', `dataset ${id} is used by a running batch evaluation`, { dataset_id: id });
    }
    if (await this.storage.rag.datasetBuilding(id)) {
      throw new AppError('conflict', `dataset ${id} has a RAG index still building; delete the index first, or wait`, { dataset_id: id });
    }
    await this.indexer?.deleteIndexesOf(id);
    if (!(await this.storage.datasets.delete(id))) throw notFound(`dataset ${id} not found`, { dataset_id: id });
  }
}
