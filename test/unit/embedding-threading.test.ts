import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';
import { poolingSessionOptions } from '../../src/engine/encoder.js';

describe('embedding sessions: ONNX Runtime thread spinning', () => {
  it('is off unless asked for, as a session config entry', () => {
    expect(poolingSessionOptions(2)).toMatchObject({
      intraOpNumThreads: 2,
      interOpNumThreads: 1,
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    expect(poolingSessionOptions(2, { spinning: false }).extra.session.intra_op.allow_spinning).toBe('0');
    expect(poolingSessionOptions(4, { spinning: true }).extra.session.intra_op.allow_spinning).toBe('1');
  });

  it('EMBEDDING_ORT_SPINNING turns it on (1 or true), default off', () => {
    expect(loadConfig({}).embeddingOrtSpinning).toBe(false);
    expect(loadConfig({ EMBEDDING_ORT_SPINNING: '' }).embeddingOrtSpinning).toBe(false);
    expect(loadConfig({ EMBEDDING_ORT_SPINNING: '0' }).embeddingOrtSpinning).toBe(false);
    expect(loadConfig({ EMBEDDING_ORT_SPINNING: '1' }).embeddingOrtSpinning).toBe(true);
    expect(loadConfig({ EMBEDDING_ORT_SPINNING: 'true' }).embeddingOrtSpinning).toBe(true);
    expect(() => loadConfig({ EMBEDDING_ORT_SPINNING: 'yes' })).toThrow(ConfigError);
    expect(() => loadConfig({ EMBEDDING_ORT_SPINNING: 'yes' })).toThrow(/EMBEDDING_ORT_SPINNING/);
  });
});
