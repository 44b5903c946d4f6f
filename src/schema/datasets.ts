import type { Dataset } from '../storage/types.js';
import { DatasetListSchema, type CreatedDataset } from '../services/datasets/service.js';
import type { RecordError } from '../services/datasets/validate.js';
import { parseInput } from '../services/validation.js';
import { builder } from './builder.js';
import { JsonScalar } from './scalars.js';

const DatasetType = builder.enumType('DatasetType', {
  values: { EVAL_SET: { value: 'eval_set' }, RAG_CORPUS: { value: 'rag_corpus' } } as const,
});
const DatasetStatus = builder.enumType('DatasetStatus', {
  values: { READY: { value: 'ready' }, PROCESSING: { value: 'processing' }, FAILED: { value: 'failed' } } as const,
});

export const DatasetRef = builder.objectRef<Dataset>('Dataset').implement({
  description: 'An uploaded evaluation set or RAG corpus (REST: /v1/datasets).',
  fields: (t) => ({
    datasetId: t.exposeString('id'),
    name: t.exposeString('name'),
    type: t.field({ type: DatasetType, resolve: (d) => d.type }),
    status: t.field({ type: DatasetStatus, resolve: (d) => d.status }),
    recordCount: t.exposeInt('recordCount'),
    metadata: t.field({ type: JsonScalar, resolve: (d) => d.metadata }),
    error: t.exposeString('error', { nullable: true }),
    createdAt: t.exposeString('createdAt'),
    updatedAt: t.exposeString('updatedAt'),
  }),
});

const RecordErrorRef = builder.objectRef<RecordError>('RecordError').implement({
  description: 'A rejected record: the others were kept.',
  fields: (t) => ({
    index: t.exposeInt('index'),
    recordId: t.exposeString('record_id', { nullable: true }),
    code: t.exposeString('code'),
    message: t.exposeString('message'),
    path: t.exposeString('path'),
    severity: t.exposeString('severity'),
  }),
});

const CreateDatasetPayload = builder.objectRef<CreatedDataset>('CreateDatasetPayload').implement({
  fields: (t) => ({
    dataset: t.field({ type: DatasetRef, resolve: (p) => p.dataset }),
    recordErrors: t.field({ type: [RecordErrorRef], resolve: (p) => p.recordErrors }),
    rejectedRecords: t.exposeInt('rejectedRecords'),
  }),
});

interface DatasetPage {
  items: Dataset[];
  nextCursor: string | null;
}

const DatasetEdge = builder.objectRef<Dataset>('DatasetEdge').implement({
  fields: (t) => ({
    node: t.field({ type: DatasetRef, resolve: (d) => d }),
  }),
});

const DatasetConnection = builder.objectRef<DatasetPage>('DatasetConnection').implement({
  description: 'A page of datasets, newest first; pass pageInfo.endCursor as `after` for the next.',
  fields: (t) => ({
    edges: t.field({ type: [DatasetEdge], resolve: (p) => p.items }),
    nodes: t.field({ type: [DatasetRef], resolve: (p) => p.items }),
    pageInfo: t.field({
      type: builder.objectRef<{ endCursor: string | null; hasNextPage: boolean }>('PageInfo').implement({
        fields: (u) => ({
          endCursor: u.exposeString('endCursor', { nullable: true }),
          hasNextPage: u.exposeBoolean('hasNextPage'),
        }),
      }),
      resolve: (p) => ({ endCursor: p.nextCursor, hasNextPage: p.nextCursor !== null }),
    }),
  }),
});

const CreateDatasetInput = builder.inputType('CreateDatasetInput', {
  fields: (t) => ({
    name: t.string({ required: true }),
    type: t.field({ type: DatasetType, required: true }),
    records: t.field({ type: [JsonScalar], required: true, description: 'Eval or corpus records (contract section 4).' }),
    metadata: t.field({ type: JsonScalar }),
  }),
});

builder.queryField('datasets', (t) =>
  t.field({
    type: DatasetConnection,
    args: {
      type: t.arg({ type: DatasetType }),
      status: t.arg({ type: DatasetStatus }),
      first: t.arg.int({ description: '1..100, default 20' }),
      after: t.arg.string(),
    },
    resolve: (_r, args, { services }) =>
      services.datasets.list(
        parseInput(
          DatasetListSchema,
          { type: args.type ?? undefined, status: args.status ?? undefined, limit: args.first ?? undefined, cursor: args.after ?? undefined },
          (f) => (f === 'limit' ? 'first' : f === 'cursor' ? 'after' : f),
        ),
      ),
  }),
);

builder.queryField('dataset', (t) =>
  t.field({
    type: DatasetRef,
    args: { id: t.arg.string({ required: true }) },
    resolve: (_r, { id }, { services }) => services.datasets.get(id),
  }),
);

builder.mutationField('createDataset', (t) =>
  t.field({
    type: CreateDatasetPayload,
    args: { input: t.arg({ type: CreateDatasetInput, required: true }) },
    resolve: (_r, { input }, { services }) =>
      services.datasets.create({ name: input.name, type: input.type, metadata: input.metadata ?? undefined, records: input.records as unknown[] }),
  }),
);

builder.mutationField('deleteDataset', (t) =>
  t.boolean({
    args: { id: t.arg.string({ required: true }) },
    resolve: async (_r, { id }, { services }) => {
      await services.datasets.delete(id);
      return true;
    },
  }),
);
