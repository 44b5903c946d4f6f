import type { IncomingMessage } from 'node:http';
import type { Readable, Transform } from 'node:stream';
import zlib from 'node:zlib';
import { AppError, invalidRequest } from '../errors.js';

/** The content-encodings a body may come in (body-parser's, for the REST routes, are the same). */
const DECODERS: Record<string, () => zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

export const bodyTooLarge = (maxBytes: number) =>
  new AppError('payload_too_large', `request body is larger than ${maxBytes} bytes`, { limit_bytes: maxBytes });

/**
 * Reads a request body into memory, at most `maxBytes` of it after decoding
 * its content-encoding (so a small compressed body cannot expand past the
 * limit). A declared content-length over the limit is refused before a byte
 * is read, and reading stops the moment a body passes it: the caller answers
 * at once and closes the connection, never reading the rest. Rejects with
 * the contract's AppErrors only.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (Number(req.headers['content-length'] ?? 0) > maxBytes) {
      reject(bodyTooLarge(maxBytes));
      return;
    }
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
    let decoder: Transform | undefined;
    if (encoding !== 'identity') {
      const make = DECODERS[encoding];
      if (!make) {
        reject(invalidRequest('Unsupported body encoding', { content_encoding: encoding }));
        return;
      }
      decoder = req.pipe(make());
    }
    const source: Readable = decoder ?? req;
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (err?: AppError) => {
      if (settled) return;
      settled = true;
      source.off('data', onData);
      if (decoder) {
        req.unpipe(decoder);
        decoder.destroy();
      }
      req.pause();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) settle(bodyTooLarge(maxBytes));
      else chunks.push(chunk);
    };
    source.on('data', onData);
    source.on('end', () => settle());
    // Only a decoder errors on the body's content; the request itself errors when its client goes away.
    decoder?.on('error', () => settle(invalidRequest('request body is not valid data for its content-encoding')));
    req.on('error', () => settle(invalidRequest('Request aborted')));
    req.on('close', () => {
      if (!req.complete) settle(invalidRequest('Request aborted'));
    });
  });
}
