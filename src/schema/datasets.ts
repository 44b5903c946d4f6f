import { DATASET_STATUSES, DATASET_TYPES, type Dataset, type DatasetRecord } from '../storage/types.js';
import { datasetCursor, datasetPosition, itemCursor, itemPosition } from '../storage/cursor.js';
import { DATASET_LIMITS as L } from '../services/datasets/limits.js';
import { DatasetFieldsSchema, DatasetListSchema, MAX_REPORTED_ERRORS, type CreatedDataset } from '../services/datasets/service.js';
import { PageQuerySchema } from '../services/paging.js';
import type { RecordError } from '../services/datasets/validate.js';
import { builder } from './builder.js';
import { enumFrom } from './enums.js';
import { parseGraphQLInput, parsePageArgs } from './input.js';
import { connectionFrom, pageArgs } from './paging.js';
import { JsonScalar } from './scalars.js';

const DatasetType = enumFrom('DatasetType', DATASET_TYPES, {
  description: 'What a dataset holds.',
  values: {
    eval_set: 'Evaluation records: a prompt, a reference answer, tags and expectations, for batch evaluations.',
    rag_corpus: 'Documents to retrieve from: a text and metadata each.',
  },
});

const DatasetStatus = enumFrom('DatasetStatus', DATASET_STATUSES, {
  description: 'Whether a dataset can be used.',
  values: {
    ready: 'Stored and usable.',
    processing: 'Still being prepared.',
    failed: 'Could not be prepared; `error` says why.',
  },
});

const DatasetRecordRef = builder.objectRef<DatasetRecord>('DatasetRecord').implement({
  description: 'A stored record of a dataset, as accepted at upload.',
  fields: (t) => ({
    index: t.exposeInt('index', { description: 'Its position among the accepted records (0-based).' }),
    recordId: t.exposeString('recordId', { description: 'The record_id (eval set) or doc_id (corpus).' }),
    data: t.field({
      type: JsonScalar,
      description: 'The record as stored: {record_id, input, reference, tags, expected, metadata} or {doc_id, text, metadata}.',
      resolve: (r) => r.data,
    }),
  }),
});

const DatasetRecordConnection = builder.connectionObject(
  {
    type: DatasetRecordRef,
    name: 'DatasetRecordConnection',
    description: "A page of a dataset's records, in upload order.",
  },
  { name: 'DatasetRecordEdge', description: 'A record in a page of records.' },
);

export const DatasetRef = builder.objectRef<Dataset>('Dataset').implement({
  description: 'An uploaded evaluation set or RAG corpus (REST: /v1/datasets).',
  fields: (t) => ({
    datasetId: t.exposeString('id', { description: 'The dataset id (`ds_…`).' }),
    name: t.exposeString('name', { description: 'The name given at upload.' }),
    type: t.field({ type: DatasetType, description: 'What the dataset holds.', resolve: (d) => d.type }),
    status: t.field({ type: DatasetStatus, description: 'Whether it can be used.', resolve: (d) => d.status }),
    recordCount: t.exposeInt('recordCount', { description: 'Records accepted (rejected ones are not stored).' }),
    metadata: t.field({ type: JsonScalar, description: 'The metadata object given at upload.', resolve: (d) => d.metadata }),
    error: t.exposeString('error', { nullable: true, description: 'Why the dataset failed; null unless status is FAILED.' }),
    createdAt: t.exposeString('createdAt', { description: 'When it was uploaded (ISO-8601, UTC).' }),
    updatedAt: t.exposeString('updatedAt', { description: 'When it last changed (ISO-8601, UTC).' }),
    records: t.field({
      type: DatasetRecordConnection,
      description: 'Its records, in upload order, a page at a time.',
      args: pageArgs(t.arg),
      resolve: async (d, args, { services }) =>
        connectionFrom(await services.datasets.records(d.id, parsePageArgs(PageQuerySchema, args)), itemCursor, itemPosition),
    }),
  }),
});

const RecordErrorRef = builder.objectRef<RecordError>('RecordError').implement({
  description: 'A rejected record: the others were kept.',
  fields: (t) => ({
    index: t.exposeInt('index', { description: "The record's position in the upload (0-based)." }),
    recordId: t.exposeString('record_id', { nullable: true, description: 'The record_id (or doc_id) it claimed, if any.' }),
    // A string, not an enum: these are error codes, given as REST and extensions.code give theirs.
    code: t.exposeString('code', { description: "What is wrong, in contract section 4's words (missing_required_field, duplicate_record_id, …)." }),
    message: t.exposeString('message', { description: 'The problem, in words.' }),
    path: t.exposeString('path', { description: 'Where in the record (`input.prompt`); empty for the whole record.' }),
    severity: t.exposeString('severity', { description: 'Always `error`: the record was rejected.' }),
  }),
});

const CreateDatasetPayload = builder.objectRef<CreatedDataset>('CreateDatasetPayload').implement({
  description: 'An upload: the dataset of the accepted records, and the rejected ones.',
  fields: (t) => ({
    dataset: t.field({ type: DatasetRef, description: 'The dataset stored.', resolve: (p) => p.dataset }),
    indexId: t.exposeString('indexId', {
      nullable: true,
      description: 'For a RAG_CORPUS: the index its upload started building (query it with ragIndex); null for other datasets.',
    }),
    recordErrors: t.field({
      type: [RecordErrorRef],
      description: `The rejected records, in record order (the first ${MAX_REPORTED_ERRORS.toLocaleString('en-US')}).`,
      resolve: (p) => p.recordErrors,
    }),
    rejectedRecords: t.exposeInt('rejectedRecords', { description: 'How many records were rejected in all.' }),
  }),
});

const DatasetConnection = builder.connectionObject(
  {
    type: DatasetRef,
    name: 'DatasetConnection',
    description: 'A page of datasets, newest first.',
  },
  { name: 'DatasetEdge', description: 'A dataset in a page of datasets.' },
);

const CreateDatasetInput = builder.inputType('CreateDatasetInput', {
  description: 'An upload of records as JSON (REST: POST /v1/datasets; files are uploaded over REST).',
  fields: (t) => ({
    name: t.string({ required: true, description: `A name, 1..${L.maxNameChars} characters.` }),
    type: t.field({ type: DatasetType, required: true, description: 'What the records are.' }),
    records: t.field({
      type: [JsonScalar],
      required: true,
      description: `Eval or corpus records (contract section 4), at most ${L.maxRecords.toLocaleString('en-US')}; a bad record is rejected alone.`,
    }),
    metadata: t.field({
      type: JsonScalar,
      description: `Any JSON object, at most ${L.maxDatasetMetadataBytes.toLocaleString('en-US')} bytes, nested at most ${L.maxMetadataDepth} deep.`,
    }),
  }),
});

builder.queryField('datasets', (t) =>
  t.field({
    type: DatasetConnection,
    description: 'Datasets, newest first, a page at a time (REST: GET /v1/datasets).',
    args: {
      type: t.arg({ type: DatasetType, description: 'Only datasets of this type.' }),
      status: t.arg({ type: DatasetStatus, description: 'Only datasets in this status.' }),
      ...pageArgs(t.arg),
    },
    resolve: async (_r, args, { services }) =>
      connectionFrom(await services.datasets.list(parsePageArgs(DatasetListSchema, args)), datasetCursor, datasetPosition),
  }),
);

builder.queryField('dataset', (t) =>
  t.field({
    type: DatasetRef,
    description: 'One dataset; not_found if there is none (REST: GET /v1/datasets/{id}).',
    args: { id: t.arg.string({ required: true, description: 'The dataset id.' }) },
    resolve: (_r, { id }, { services }) => services.datasets.get(id),
  }),
);

builder.mutationField('createDataset', (t) =>
  t.field({
    type: CreateDatasetPayload,
    description: 'Uploads a dataset; records that fail validation are rejected one by one.',
    args: { input: t.arg({ type: CreateDatasetInput, required: true, description: 'The upload.' }) },
    resolve: (_r, { input }, { services }) =>
      services.datasets.create({
        fields: parseGraphQLInput(DatasetFieldsSchema, { name: input.name, type: input.type, metadata: input.metadata }),
        records: input.records as unknown[],
      }),
  }),
);

builder.mutationField('deleteDataset', (t) =>
  t.boolean({
    description: 'Deletes a dataset, its records and its RAG indexes; true when done. conflict while a batch evaluation uses it or one of its indexes is building.',
    args: { id: t.arg.string({ required: true, description: 'The dataset id.' }) },
    resolve: async (_r, { id }, { services }) => {
      await services.datasets.delete(id);
      return true;
    },
  }),
);
