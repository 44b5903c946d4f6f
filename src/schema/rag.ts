import { RAG_INDEX_STATUSES, type RagIndex } from '../storage/types.js';
import { ragIndexCursor, ragIndexPosition } from '../storage/cursor.js';
import { MIN_FILL } from '../services/rag/chunker.js';
import { progressOf, type RagProgress } from '../services/rag/errors.js';
import { RRF_K } from '../services/rag/fusion.js';
import type { RetrievedChunk } from '../services/rag/retrieval.js';
import { CANDIDATES } from '../services/rag/retrieval.js';
import type { RagSearchResult } from '../services/rag/service.js';
import { EXACT_MAX_VECTORS } from '../services/rag/vector-index.js';
import { BuildRagIndexSchema, MAX_FILTER_KEYS, RAG_MODES, RagIndexListSchema, RagSearchSchema } from '../services/rag-schema.js';
import { builder } from './builder.js';
import { fieldDocs } from './describe.js';
import { enumFrom, enumOfUnion } from './enums.js';
import { parseGraphQLInput, parsePageArgs } from './input.js';
import { connectionFrom, pageArgs } from './paging.js';
import { JsonScalar } from './scalars.js';

const RagIndexStatus = enumFrom('RagIndexStatus', RAG_INDEX_STATUSES, {
  description: 'Where a RAG index is.',
  values: {
    processing: 'Documents are being chunked and embedded; searches get a conflict error with the progress.',
    ready: 'Built: searchable (documents that failed are left out; see failedDocumentCount).',
    failed: 'Could not be built: every document failed, or the embedding model could not be loaded (`error` says which).',
  },
});

export const RagSearchMode = enumFrom('RagSearchMode', RAG_MODES, {
  description: 'How retrieval ranks chunks.',
  values: {
    hybrid: `Lexical and dense candidates (${CANDIDATES} each, or twice topK) fused by reciprocal rank fusion, k = ${RRF_K}, weighted per index (RagIndex.fusion).`,
    lexical: 'Full-text search alone (SQLite FTS5 bm25, PostgreSQL ts_rank).',
    dense: 'Embedding similarity alone (cosine).',
  },
});

const DenseMethod = enumOfUnion<NonNullable<RagSearchResult['denseMethod']>>('DenseSearchMethod', {
  description: 'How the dense candidates were found.',
  values: {
    exact: `Every vector compared (indexes of at most ${EXACT_MAX_VECTORS.toLocaleString('en-US')} chunks, and larger ones until their graph is built).`,
    hnsw: 'An HNSW graph (hnswlib), approximate.',
  },
});

const RagProgressRef = builder.objectRef<RagProgress>('RagIndexProgress').implement({
  description: "How far an index's build is, in documents.",
  fields: (t) => ({
    total: t.exposeInt('total', { description: 'Documents in the dataset.' }),
    completed: t.exposeInt('completed', { description: 'Documents chunked, embedded and stored.' }),
    failed: t.exposeInt('failed', { description: 'Documents that could not be indexed (left out of the index).' }),
  }),
});

const RagChunking = builder.objectRef<RagIndex['options']>('RagChunking').implement({
  description: 'How an index cuts documents into chunks.',
  fields: (t) => ({
    chunkTokens: t.exposeInt('chunk_tokens', {
      description: `Most tokens of the embedding model in a chunk (within what the model reads); cuts fall at paragraph, then sentence ends once a chunk is ${MIN_FILL * 100}% full.`,
    }),
    chunkOverlap: t.exposeInt('chunk_overlap', { description: 'Most tokens a chunk repeats from the one before it, starting at a sentence when one is that close.' }),
  }),
});

const RagFusionRef = builder.objectRef<NonNullable<RagIndex['fusion']>>('RagFusion').implement({
  description:
    `How HYBRID search weighs its retrievers in this index: weighted reciprocal rank fusion, sum of weight / (${RRF_K} + rank). ` +
    "Calibrated when the build ends: each retriever's MRR@10 on pseudo-queries from the index's own chunks; the better one weighs 1, the other the square of its MRR's share.",
  fields: (t) => ({
    lexicalWeight: t.exposeFloat('lexical', { description: 'Weight of the lexical ranks.' }),
    denseWeight: t.exposeFloat('dense', { description: 'Weight of the dense ranks.' }),
    calibrationQueries: t.exposeInt('queries', { description: 'Pseudo-queries measured (0: none could be made; both weights are then 1).' }),
    lexicalMrr: t.exposeFloat('lexicalMrr', { description: "Lexical search's MRR@10 on them." }),
    denseMrr: t.exposeFloat('denseMrr', { description: "Dense search's MRR@10 on them." }),
  }),
});

export const RagIndexRef = builder.objectRef<RagIndex>('RagIndex').implement({
  description: 'A retrieval index over a rag_corpus dataset (REST: /v1/rag/indexes).',
  fields: (t) => ({
    indexId: t.exposeString('id', { description: 'The index id (`ri_…`).' }),
    datasetId: t.exposeString('datasetId', { description: 'The rag_corpus dataset it indexes.' }),
    status: t.field({ type: RagIndexStatus, description: 'Where the build is.', resolve: (i) => i.status }),
    documentCount: t.exposeInt('documentsIndexed', { description: 'Documents indexed (searchable).' }),
    chunkCount: t.exposeInt('chunkCount', { description: 'Chunks of the indexed documents.' }),
    failedDocumentCount: t.exposeInt('documentsFailed', { description: 'Documents that could not be indexed.' }),
    progress: t.field({ type: RagProgressRef, description: 'Documents done of all.', resolve: (i) => progressOf(i) }),
    embeddingModel: t.exposeString('embeddingModel', { nullable: true, description: 'The embedding model of its vectors; null until the build starts.' }),
    embeddingDimensions: t.exposeInt('embeddingDimensions', { nullable: true, description: 'Length of its vectors; null until the build starts.' }),
    chunking: t.field({ type: RagChunking, description: 'Its chunking options.', resolve: (i) => i.options }),
    fusion: t.field({ type: RagFusionRef, nullable: true, description: 'Its fusion weights; null until its build ends (HYBRID then weighs both 1).', resolve: (i) => i.fusion }),
    error: t.exposeString('error', { nullable: true, description: 'Why the build failed; null unless status is FAILED.' }),
    createdAt: t.exposeString('createdAt', { description: 'When it was created (ISO-8601, UTC).' }),
    startedAt: t.exposeString('startedAt', { nullable: true, description: 'When its build (last) started; null while waiting for the embedding model.' }),
    updatedAt: t.exposeString('updatedAt', { description: 'When it last changed (ISO-8601, UTC).' }),
    completedAt: t.exposeString('completedAt', { nullable: true, description: 'When its build ended; null while processing.' }),
  }),
});

const RagSpan = builder.objectRef<{ start: number; end: number }>('RagSpan').implement({
  description: "A chunk's place in its document, in Unicode code points (end exclusive).",
  fields: (t) => ({
    start: t.exposeInt('start', { description: 'First code point.' }),
    end: t.exposeInt('end', { description: 'One past the last code point.' }),
  }),
});

export const RagSearchHit = builder.objectRef<RetrievedChunk>('RagSearchHit').implement({
  description: 'A retrieved chunk, with the ranks that placed it.',
  fields: (t) => ({
    docId: t.string({ description: 'The document it comes from.', resolve: (h) => h.chunk.docId }),
    chunkId: t.string({ description: 'The chunk id, stable across rebuilds with the same options.', resolve: (h) => h.chunk.chunkId }),
    score: t.float({
      description: "HYBRID: the RRF score (sum of weight/(k + rank), the index's fusion weights); LEXICAL: the text relevance of the store; DENSE: cosine similarity.",
      resolve: (h) => h.score,
    }),
    text: t.string({ description: "The chunk's text.", resolve: (h) => h.chunk.text }),
    lexicalRank: t.int({ nullable: true, description: 'Its rank among the lexical candidates (1 = best); null if not among them.', resolve: (h) => h.lexicalRank }),
    denseRank: t.int({ nullable: true, description: 'Its rank among the dense candidates (1 = best); null if not among them.', resolve: (h) => h.denseRank }),
    span: t.field({ type: RagSpan, description: 'Where it is in its document.', resolve: (h) => ({ start: h.chunk.start, end: h.chunk.end }) }),
    metadata: t.field({ type: JsonScalar, description: "The document's metadata.", resolve: (h) => h.chunk.metadata }),
  }),
});

const RagCandidates = builder.objectRef<RagSearchResult['candidates']>('RagCandidates').implement({
  description: 'How many candidates each retriever gave before fusion.',
  fields: (t) => ({
    lexical: t.exposeInt('lexical', { description: 'Lexical candidates (0 in DENSE mode).' }),
    dense: t.exposeInt('dense', { description: 'Dense candidates (0 in LEXICAL mode).' }),
  }),
});

const RagRetrieval = builder.objectRef<RagSearchResult>('RagRetrieval').implement({
  description: 'What a search looked at, and how long it took.',
  fields: (t) => ({
    indexId: t.string({ description: 'The index searched.', resolve: (r) => r.index.id }),
    datasetId: t.string({ description: 'Its dataset.', resolve: (r) => r.index.datasetId }),
    mode: t.field({ type: RagSearchMode, description: 'How chunks were ranked.', resolve: (r) => r.mode }),
    topK: t.exposeInt('topK', { description: 'Chunks asked for.' }),
    latencyMs: t.float({ description: 'Milliseconds for the whole retrieval, query embedding included.', resolve: (r) => Math.round(r.latencyMs * 100) / 100 }),
    embeddingMs: t.float({ description: 'Milliseconds spent embedding the query (0 in LEXICAL mode).', resolve: (r) => Math.round(r.embeddingMs * 100) / 100 }),
    candidates: t.field({ type: RagCandidates, description: 'Candidates per retriever.', resolve: (r) => r.candidates }),
    denseMethod: t.field({ type: DenseMethod, nullable: true, description: 'How dense candidates were found; null in LEXICAL mode.', resolve: (r) => r.denseMethod }),
  }),
});

const RagSearchResultRef = builder.objectRef<RagSearchResult>('RagSearchResult').implement({
  description: 'Ranked chunks of an index for a query, without generation (REST: POST /v1/rag/search).',
  fields: (t) => ({
    results: t.field({ type: [RagSearchHit], description: 'The chunks, best first.', resolve: (r) => r.results }),
    retrieval: t.field({ type: RagRetrieval, description: 'What the search looked at.', resolve: (r) => r }),
  }),
});

const RagIndexConnection = builder.connectionObject(
  { type: RagIndexRef, name: 'RagIndexConnection', description: 'A page of RAG indexes, newest first.' },
  { name: 'RagIndexEdge', description: 'A RAG index in a page of indexes.' },
);

const searchDocs = fieldDocs(RagSearchSchema);
const buildDocs = fieldDocs(BuildRagIndexSchema);

const RagSearchInput = builder.inputType('RagSearchInput', {
  description: 'A retrieval query (REST: POST /v1/rag/search). Name the index by indexId or by datasetId, not both.',
  fields: (t) => ({
    query: t.string({ required: true, description: searchDocs('query', 'What to look for; not blank') }),
    indexId: t.string({ description: searchDocs('index_id', 'The index to search') }),
    datasetId: t.string({ description: searchDocs('dataset_id', "A rag_corpus dataset: its newest ready index is searched") }),
    topK: t.int({ description: searchDocs('top_k', 'Chunks to return') }),
    mode: t.field({ type: RagSearchMode, description: searchDocs('mode', 'How to rank') }),
    filter: t.field({
      type: JsonScalar,
      description: `Document metadata that must match exactly, {"key": value} (strings, numbers, booleans, null; at most ${MAX_FILTER_KEYS} keys).`,
    }),
  }),
});

const BuildRagIndexInput = builder.inputType('BuildRagIndexInput', {
  description: 'An index build (REST: POST /v1/rag/indexes). The same dataset and options again rebuild that index.',
  fields: (t) => ({
    datasetId: t.string({ required: true, description: buildDocs('dataset_id', 'The rag_corpus dataset to index') }),
    chunkTokens: t.int({ description: buildDocs('chunk_tokens', "Most tokens in a chunk (the embedding model's tokenizer; capped at what the model reads)") }),
    chunkOverlap: t.int({ description: buildDocs('chunk_overlap', 'Most tokens a chunk repeats from the one before; at most half of chunkTokens') }),
  }),
});

builder.queryField('ragIndex', (t) =>
  t.field({
    type: RagIndexRef,
    description: 'One RAG index; not_found if there is none (REST: GET /v1/rag/indexes/{index_id}).',
    args: { id: t.arg.string({ required: true, description: 'The index id.' }) },
    resolve: (_r, { id }, { services }) => services.rag.get(id),
  }),
);

builder.queryField('ragIndexes', (t) =>
  t.field({
    type: RagIndexConnection,
    description: 'RAG indexes, newest first, a page at a time (REST: GET /v1/rag/indexes).',
    args: {
      datasetId: t.arg.string({ description: 'Only the indexes of this dataset.' }),
      status: t.arg({ type: RagIndexStatus, description: 'Only indexes in this status.' }),
      ...pageArgs(t.arg),
    },
    resolve: async (_r, { datasetId, ...args }, { services }) =>
      connectionFrom(await services.rag.list(parsePageArgs(RagIndexListSchema, { ...args, dataset_id: datasetId })), ragIndexCursor, ragIndexPosition),
  }),
);

builder.queryField('ragSearch', (t) =>
  t.field({
    type: RagSearchResultRef,
    description:
      'Ranked chunks for a query, without generation (REST: POST /v1/rag/search). not_found for an unknown index or dataset; ' +
      'conflict while the index is processing (extensions.details carry its progress) or if it failed.',
    args: { input: t.arg({ type: RagSearchInput, required: true, description: 'The query.' }) },
    resolve: (_r, { input }, { ctx, services }) => services.rag.search(parseGraphQLInput(RagSearchSchema, input), ctx),
  }),
);

builder.mutationField('buildRagIndex', (t) =>
  t.field({
    type: RagIndexRef,
    description: 'Builds an index of a rag_corpus dataset, or rebuilds the one with the same options; it is processing when returned.',
    args: { input: t.arg({ type: BuildRagIndexInput, required: true, description: 'The dataset and chunking options.' }) },
    resolve: (_r, { input }, { services }) => services.rag.build(parseGraphQLInput(BuildRagIndexSchema, input)),
  }),
);

builder.mutationField('deleteRagIndex', (t) =>
  t.boolean({
    description: 'Deletes a RAG index with its chunks (a build under way stops first); true when done.',
    args: { id: t.arg.string({ required: true, description: 'The index id.' }) },
    resolve: async (_r, { id }, { services }) => {
      await services.rag.delete(id);
      return true;
    },
  }),
);

builder.subscriptionField('ragIndexProgress', (t) =>
  t.field({
    type: RagIndexRef,
    description:
      "A RAG index build's progress: the index now, then each change (documents stored, status), until the build ends; on any replica, whichever process (or worker) builds it.",
    args: { id: t.arg.id({ required: true, description: 'The index id (`ri_…`).' }) },
    subscribe: (_r, { id }, { ctx, services }) => services.rag.watch(String(id), ctx.signal),
    resolve: (index) => index,
  }),
);
