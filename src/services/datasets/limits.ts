/** Dataset limits of contract section 4, in one place. */
export const DATASET_LIMITS = {
  maxRecords: 50_000,
  maxBodyBytes: 100 * 1024 * 1024,
  maxPromptChars: 200_000,
  maxRecordBytes: 256 * 1024,
  maxTags: 32,
  minTagChars: 1,
  maxTagChars: 64,
  maxDatasetMetadataBytes: 16 * 1024,
  maxRecordMetadataBytes: 8 * 1024,
  maxMetadataDepth: 5,
  maxNameChars: 200,
  maxRecordIdChars: 256,
  maxTextChars: 200_000,
} as const;
