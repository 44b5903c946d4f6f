import { describe, expect, it } from 'vitest';
import { ContextOverflowError, EngineOverloadedError, GenerationCancelledError, ModelNotLoadedError } from '../../src/engine/errors.js';
import { AppError, HTTP_STATUS } from '../../src/errors.js';
import { isExpected, publicError } from '../../src/services/errors.js';
import { InvalidCursorError } from '../../src/storage/errors.js';

describe('engine and storage errors become contract errors in one place', () => {
  it('maps each typed error to its code, status and details', () => {
    const cases: Array<[unknown, string, Record<string, unknown> | undefined]> = [
      [new ContextOverflowError(600, 512), 'invalid_request', { field: 'prompt', prompt_tokens: 600, context_window: 512 }],
      [new GenerationCancelledError(), 'invalid_request', undefined],
      [new EngineOverloadedError(64), 'service_unavailable', { max_waiting_requests: 64 }],
      [new ModelNotLoadedError('loading'), 'service_unavailable', { state: 'loading' }],
      [new ModelNotLoadedError('failed', 'bad graph'), 'service_unavailable', { state: 'failed', reason: 'bad graph' }],
      [new InvalidCursorError(), 'invalid_request', { field: 'cursor' }],
    ];
    for (const [err, code, details] of cases) {
      const e = publicError(err);
      expect(e.code, String(err)).toBe(code);
      expect(e.status).toBe(HTTP_STATUS[e.code]);
      expect(e.details).toEqual(details);
      expect(isExpected(err)).toBe(true);
    }
    expect(publicError(new ContextOverflowError(600, 512)).message).toBe('prompt is 600 tokens; the context window is 512');
  });

  it('passes AppErrors through and masks everything else', () => {
    const app = new AppError('conflict', 'busy');
    expect(publicError(app)).toBe(app);
    const masked = publicError(new Error('secret internals at /srv/x.ts:12'));
    expect(masked.code).toBe('internal_error');
    expect(masked.message).toBe('Internal server error');
    expect(isExpected(new TypeError('x'))).toBe(false);
    expect(publicError('a string').code).toBe('internal_error');
  });
});
