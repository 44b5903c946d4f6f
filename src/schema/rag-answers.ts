import type { RagAnswer, RagCitation } from '../services/rag/answers.js';
import { MAX_FILTER_KEYS, RagQuerySchema } from '../services/rag-schema.js';
import { builder } from './builder.js';
import { fieldDocs } from './describe.js';
import { enumFrom } from './enums.js';
import { parseGraphQLInput } from './input.js';
import { RagSearchHit, RagSearchMode } from './rag.js';
import { JsonScalar } from './scalars.js';
import { streamEvents, type StreamEvent } from './stream.js';

const ms = (v: number) => Math.round(v * 100) / 100;

const RagFinishReason = enumFrom('RagFinishReason', ['stop', 'length'] as const, {
  description: 'Why the answer ended.',
  values: { stop: 'The model ended it.', length: 'maxNewTokens were generated, or the context window was full.' },
});

const RagCitationRef = builder.objectRef<RagCitation>('RagCitation').implement({
  description: 'A retrieved chunk the answer\'s prompt held, as [number].',
  fields: (t) => ({
    number: t.exposeInt('number', { description: 'Its number in the prompt: the answer cites it as [number].' }),
    cited: t.exposeBoolean('cited', { description: 'Whether the answer cites it.' }),
    hit: t.field({ type: RagSearchHit, description: 'The chunk, its score and the ranks that placed it.', resolve: (c) => c }),
  }),
});

const RagAnswerRetrieval = builder.objectRef<RagAnswer>('RagAnswerRetrieval').implement({
  description: 'What the answer was given to read.',
  fields: (t) => ({
    indexId: t.string({ description: 'The index searched.', resolve: (a) => a.index.id }),
    datasetId: t.string({ description: 'Its dataset.', resolve: (a) => a.index.datasetId }),
    mode: t.field({ type: RagSearchMode, description: 'How chunks were ranked.', resolve: (a) => a.retrieval.mode }),
    topK: t.int({ description: 'Chunks asked for.', resolve: (a) => a.retrieval.topK }),
    retrieved: t.int({ description: 'Chunks retrieval returned.', resolve: (a) => a.retrieval.retrieved }),
    used: t.int({ description: 'Of those, the ones that fitted the context window with the question and the answer (best first).', resolve: (a) => a.retrieval.used }),
    latencyMs: t.float({ description: 'Milliseconds for retrieval, query embedding included.', resolve: (a) => ms(a.retrieval.latencyMs) }),
    embeddingMs: t.float({ description: 'Milliseconds spent embedding the query.', resolve: (a) => ms(a.retrieval.embeddingMs) }),
  }),
});

const RagGeneration = builder.objectRef<RagAnswer['generation']>('RagGeneration').implement({
  description: 'How the answer was generated.',
  fields: (t) => ({
    model: t.exposeString('model', { description: 'The model that answered.' }),
    latencyMs: t.float({ description: 'Milliseconds of generation.', resolve: (g) => ms(g.latencyMs) }),
    promptTokens: t.exposeInt('promptTokens', { description: 'Tokens of the prompt (question and sources).' }),
    completionTokens: t.exposeInt('completionTokens', { description: 'Tokens of the answer.' }),
    finishReason: t.field({ type: RagFinishReason, description: 'Why the answer ended.', resolve: (g) => g.finishReason }),
    timeToFirstTokenMs: t.float({ nullable: true, description: 'Milliseconds from submission to the first token.', resolve: (g) => (g.timeToFirstTokenMs === null ? null : ms(g.timeToFirstTokenMs)) }),
    seed: t.exposeFloat('seed', { nullable: true, description: "The sampler's seed; null when nothing was sampled (temperature 0)." }),
  }),
});

const RagAnswerRef = builder.objectRef<RagAnswer>('RagAnswer').implement({
  description: 'An answer from retrieved chunks, with its citations (REST: POST /v1/rag).',
  fields: (t) => ({
    answer: t.exposeString('answer', { description: 'The answer, citing sources as [1], [2], ...' }),
    citations: t.field({ type: [RagCitationRef], description: 'The chunks the prompt held, best first.', resolve: (a) => a.citations }),
    retrieval: t.field({ type: RagAnswerRetrieval, description: 'What retrieval gave.', resolve: (a) => a }),
    generation: t.field({ type: RagGeneration, description: 'How the answer was generated.', resolve: (a) => a.generation }),
    latencyMs: t.float({ description: 'Milliseconds for the whole request.', resolve: (a) => ms(a.latencyMs) }),
  }),
});

const ragDocs = fieldDocs(RagQuerySchema);

const RagInput = builder.inputType('RagInput', {
  description: 'A question to answer from an index (REST: POST /v1/rag). Name the index by indexId or by datasetId, not both.',
  fields: (t) => ({
    query: t.string({ required: true, description: ragDocs('query', 'The question; not blank') }),
    indexId: t.string({ description: ragDocs('index_id', 'The index to search') }),
    datasetId: t.string({ description: ragDocs('dataset_id', 'A rag_corpus dataset: its newest ready index is searched') }),
    topK: t.int({ description: ragDocs('top_k', 'Chunks to retrieve') }),
    mode: t.field({ type: RagSearchMode, description: ragDocs('mode', 'How to rank') }),
    filter: t.field({
      type: JsonScalar,
      description: `Document metadata that must match exactly, {"key": value} (at most ${MAX_FILTER_KEYS} keys).`,
    }),
    maxNewTokens: t.int({ description: ragDocs('max_new_tokens', 'Tokens of the answer at most') }),
    temperature: t.float({ description: ragDocs('temperature', 'Sampling temperature; 0 is greedy') }),
    seed: t.float({ description: ragDocs('seed', 'A whole number; the same seed and request give the same answer') }),
  }),
});

const toRequest = (input: typeof RagInput.$inferInput) => parseGraphQLInput(RagQuerySchema, input);

builder.mutationField('rag', (t) =>
  t.field({
    type: RagAnswerRef,
    description: 'Answers a question from a RAG index, citing the chunks it read (REST: POST /v1/rag).',
    args: { input: t.arg({ type: RagInput, required: true, description: 'The question and where to look.' }) },
    resolve: (_r, { input }, { ctx, services }) => services.ragAnswers.answer(toRequest(input), ctx),
  }),
);

type RagStreamEvent = StreamEvent<string, RagAnswer>;

const RagStreamEventRef = builder.objectRef<RagStreamEvent>('RagStreamEvent').implement({
  description: 'A piece of the answer as it is generated, or (last) the whole answer.',
  fields: (t) => ({
    token: t.string({ nullable: true, description: 'The new text; null on the last event.', resolve: (e) => e.token }),
    done: t.boolean({ description: 'True on the last event, which carries the answer.', resolve: (e) => e.result !== null }),
    result: t.field({ type: RagAnswerRef, nullable: true, description: 'The whole answer, on the last event only.', resolve: (e) => e.result }),
  }),
});

builder.subscriptionField('ragStream', (t) =>
  t.field({
    type: RagStreamEventRef,
    description: 'Streams an answer from a RAG index piece by piece; the last event carries the whole answer.',
    args: { input: t.arg({ type: RagInput, required: true, description: 'The question and where to look.' }) },
    subscribe: (_r, { input }, { ctx, services }) => {
      const request = toRequest(input);
      return streamEvents<string, RagAnswer>((onText, signal) => services.ragAnswers.answer(request, { ...ctx, signal }, onText), ctx.signal);
    },
    resolve: (event) => event,
  }),
);
