import { Router, type Request, type RequestHandler } from 'express';
import { jsonBody } from '../http/json.js';
import { AppError, invalidRequest } from '../errors.js';
import type { Dataset } from '../storage/types.js';
import { DATASET_LIMITS } from '../services/datasets/limits.js';
import { DatasetFieldsSchema, DatasetListSchema, type CreateDatasetInput, type DatasetService } from '../services/datasets/service.js';
import { parseInput } from '../services/validation.js';
import { asyncHandler } from './middleware.js';
import { readMultipart } from './multipart.js';

export const datasetSummaryJson = (d: Dataset) => ({
  dataset_id: d.id,
  name: d.name,
  type: d.type,
  status: d.status,
  record_count: d.recordCount,
  created_at: d.createdAt,
});

export const datasetJson = (d: Dataset) => ({
  ...datasetSummaryJson(d),
  error: d.error,
  updated_at: d.updatedAt,
  metadata: d.metadata,
});

/** A JSON body or a multipart upload, as the service's input. */
async function uploadInput(req: Request): Promise<CreateDatasetInput> {
  const maxBytes = DATASET_LIMITS.maxBodyBytes;
  if (!req.is('multipart/form-data')) {
    const body: unknown = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidRequest('request body must be a JSON object');
    const b = body as Record<string, unknown>;
    return { fields: datasetFields(b.name, b.type, b.metadata), records: b.records as unknown[] | undefined };
  }
  const { fields, file } = await readMultipart(req, maxBytes);
  if (!file) throw invalidRequest('file is required', { field: 'file' });
  let metadata: unknown;
  if (fields.metadata !== undefined && fields.metadata.trim() !== '') {
    try {
      metadata = JSON.parse(fields.metadata);
    } catch {
      throw invalidRequest('metadata must be a JSON object', { field: 'metadata' });
    }
  }
  return { fields: datasetFields(fields.name, fields.type, metadata), file: { filename: file.filename, bytes: file.bytes } };
}

const datasetFields = (name: unknown, type: unknown, metadata: unknown) =>
  parseInput(DatasetFieldsSchema, { name, type, metadata: metadata ?? undefined });

/**
 * A body whose declared length is over the limit is refused at once, before
 * any of it is read (body-parser would first read and discard all of it).
 * The connection is closed, since the rest of the body is never read.
 */
function refuseDeclaredOversize(maxBytes: number): RequestHandler {
  return (req, res, next) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    // Multipart framing adds a little to the file itself.
    if (declared > maxBytes + 64 * 1024) {
      res.setHeader('connection', 'close');
      next(new AppError('payload_too_large', `request body is larger than ${maxBytes} bytes`, { limit_bytes: maxBytes }));
      return;
    }
    next();
  };
}

/** Contract section 4. */
export function datasetRouter(datasets: DatasetService): Router {
  const router = Router();
  const json = jsonBody(DATASET_LIMITS.maxBodyBytes, false);
  router.post(
    '/v1/datasets',
    refuseDeclaredOversize(DATASET_LIMITS.maxBodyBytes),
    json,
    asyncHandler(async (req, res) => {
      const { dataset, indexId, recordErrors, rejectedRecords } = await datasets.create(await uploadInput(req));
      res.status(201).json({
        ...datasetSummaryJson(dataset),
        // A corpus's index build starts with its upload (GET /v1/rag/indexes/{index_id}).
        ...(indexId !== null ? { index_id: indexId } : {}),
        ...(rejectedRecords > 0 ? { record_errors: recordErrors, rejected_records: rejectedRecords } : {}),
        request_id: req.ctx.requestId,
      });
    }),
  );
  router.get(
    '/v1/datasets',
    asyncHandler(async (req, res) => {
      const q = parseInput(DatasetListSchema, req.query);
      const page = await datasets.list(q);
      res.json({ data: page.items.map(datasetSummaryJson), next_cursor: page.nextCursor, request_id: req.ctx.requestId });
    }),
  );
  router.get(
    '/v1/datasets/:id',
    asyncHandler(async (req, res) => {
      res.json({ ...datasetJson(await datasets.get(String(req.params.id))), request_id: req.ctx.requestId });
    }),
  );
  router.delete(
    '/v1/datasets/:id',
    asyncHandler(async (req, res) => {
      await datasets.delete(String(req.params.id));
      res.json({ dataset_id: req.params.id, deleted: true, request_id: req.ctx.requestId });
    }),
  );
  return router;
}
