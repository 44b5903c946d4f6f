import type { Request } from 'express';
import busboy from 'busboy';
import { AppError, invalidRequest } from '../errors.js';

export interface MultipartUpload {
  fields: Record<string, string>;
  file: { field: string; filename: string; bytes: Buffer } | null;
}

const malformed = () => invalidRequest('Malformed multipart/form-data body');

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
      reject(malformed());
      return;
    }
    // Keyed by the client's field names: no prototype, so `__proto__` or `constructor` are plain names.
    const fields: Record<string, string> = Object.create(null) as Record<string, string>;
    let file: MultipartUpload['file'] = null;
    let failed = false;
    let settled = false;
    const fail = (err: AppError) => {
      if (failed || settled) return;
      failed = true;
      // The rest of the body is never parsed: the connection closes after the answer, and until
      // then what still arrives is drained without being kept.
      if (!req.res?.headersSent) req.res?.setHeader('connection', 'close');
      reject(err);
      // Not from inside busboy's own callback: its 'limit' event fires mid-write, and busboy
      // goes on to touch the file stream that destroy() has just cleared (a TypeError thrown
      // from a 'data' handler, which ended the process: a chunked upload past the size limit).
      setImmediate(() => {
        req.unpipe(bb);
        // Destroying busboy errors its open file stream too; both have listeners, so nothing goes uncaught.
        bb.destroy();
        req.resume();
      });
    };
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated) fail(invalidRequest(`form field ${name} is too long`, { field: name }));
      else fields[name] = value;
    });
    bb.on('file', (name, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => {
        if (!failed) chunks.push(c);
      });
      stream.on('limit', () => fail(new AppError('payload_too_large', `file is larger than ${maxBytes} bytes`, { limit_bytes: maxBytes })));
      // A body cut off inside the file ("Unexpected end of form") errors the file stream, not
      // only busboy: unheard, that error would be uncaught and end the process.
      stream.on('error', () => fail(malformed()));
      stream.on('close', () => {
        if (!failed) file = { field: name, filename: info.filename ?? '', bytes: Buffer.concat(chunks) };
      });
    });
    bb.on('filesLimit', () => fail(invalidRequest('only one file per upload', { field: 'file' })));
    bb.on('fieldsLimit', () => fail(invalidRequest('too many form fields')));
    bb.on('error', () => fail(malformed()));
    // A client gone mid-upload never ends the body: without this the promise would never settle.
    req.on('error', () => fail(invalidRequest('Request aborted')));
    bb.on('close', () => {
      if (failed) return;
      settled = true;
      resolve({ fields, file });
    });
    req.pipe(bb);
  });
}
