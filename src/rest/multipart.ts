import type { Request } from 'express';
import busboy from 'busboy';
import { AppError, invalidRequest } from '../errors.js';

export interface MultipartUpload {
  fields: Record<string, string>;
  file: { field: string; filename: string; bytes: Buffer } | null;
}

/**
 * Reads a multipart/form-data body with at most one file, refusing (413)
 * as soon as it grows past `maxBytes` instead of buffering it whole.
 */
export function readMultipart(req: Request, maxBytes: number): Promise<MultipartUpload> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fileSize: maxBytes, files: 1, fields: 20, fieldSize: 64 * 1024 } });
    } catch {
      reject(invalidRequest('Malformed multipart/form-data body'));
      return;
    }
    const fields: Record<string, string> = {};
    let file: MultipartUpload['file'] = null;
    let failed = false;
    const fail = (err: AppError) => {
      if (failed) return;
      failed = true;
      req.unpipe(bb);
      // The rest of the body is never read: drain it without keeping it so the connection can close cleanly.
      req.resume();
      reject(err);
    };
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated) fail(invalidRequest(`form field ${name} is too long`, { field: name }));
      else fields[name] = value;
    });
    bb.on('file', (name, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('limit', () => fail(new AppError('payload_too_large', `file is larger than ${maxBytes} bytes`, { limit_bytes: maxBytes })));
      stream.on('close', () => {
        if (!failed) file = { field: name, filename: info.filename ?? '', bytes: Buffer.concat(chunks) };
      });
    });
    bb.on('filesLimit', () => fail(invalidRequest('only one file per upload', { field: 'file' })));
    bb.on('error', () => fail(invalidRequest('Malformed multipart/form-data body')));
    bb.on('close', () => {
      if (!failed) resolve({ fields, file });
    });
    req.pipe(bb);
  });
}
