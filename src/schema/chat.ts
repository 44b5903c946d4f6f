import type { ChatResult, ChatToken } from '../services/chat.js';
import { ChatRequestSchema } from '../services/chat-schema.js';
import { FINISH_REASONS } from '../engine/types.js';
import { builder } from './builder.js';
import { JsonScalar } from './scalars.js';
import { fieldDocs } from './describe.js';
import { enumFrom, enumOfUnion } from './enums.js';
import { parseGraphQLInput } from './input.js';
import { streamEvents, type StreamEvent } from './stream.js';

const ChatMode = enumFrom('ChatMode', ChatRequestSchema.shape.mode.unwrap().options, {
  description: 'How a chat answer is made.',
  values: {
    single: 'Answer once.',
    refine: 'Answer, then critique the answer and rewrite it, refineSteps times.',
  },
});

// A cancelled generation never reaches a client as a result (its caller is gone), so results finish one of two ways.
const FinishReason = enumFrom(
  'FinishReason',
  FINISH_REASONS.filter((r): r is ChatResult['finishReason'] => r !== 'cancelled'),
  {
    description: 'Why generation stopped.',
    values: {
      stop: 'The model produced its end token or a stop string.',
      length: 'maxNewTokens were generated, or the context window was full.',
    },
  },
);

const ChatPhase = enumOfUnion<ChatToken['phase']>('ChatPhase', {
  description: 'Which step of a chat a streamed token belongs to.',
  values: {
    answer: 'The answer (the only step in SINGLE mode).',
    critique: "REFINE mode: the model's critique of its answer.",
    rewrite: 'REFINE mode: the rewritten answer.',
  },
});

const chatDocs = fieldDocs(ChatRequestSchema);

const ChatRole = enumFrom('ChatRole', ['system', 'user', 'assistant'] as const, {
  description: 'Who speaks a message.',
  values: { system: 'Instructions for the assistant.', user: 'The person asking.', assistant: "The model's earlier answers." },
});

const ChatMessageInput = builder.inputType('ChatMessageInput', {
  description: 'One turn of a conversation.',
  fields: (t) => ({
    role: t.field({ type: ChatRole, required: true, description: 'Who speaks.' }),
    content: t.string({ required: true, description: 'What is said.' }),
  }),
});

const ResponseFormatType = enumFrom('ResponseFormatType', ['text', 'json_object', 'json_schema', 'choice', 'regex'] as const, {
  description: 'What the answer is constrained to (decoding masks every token that cannot lead to a valid answer).',
  values: {
    text: 'Free text (no constraint).',
    json_object: 'Any JSON object.',
    json_schema: 'A JSON document valid against jsonSchema.schema (the supported keywords are listed in the README; others are refused).',
    choice: 'Exactly one of the strings in choices.',
    regex: 'Text matching the regular expression pattern as a whole.',
  },
});

const JsonSchemaFormatInput = builder.inputType('JsonSchemaFormatInput', {
  description: "A JSON schema the answer must satisfy (OpenAI's response_format.json_schema).",
  fields: (t) => ({
    name: t.string({ description: 'A name for the schema (informational).' }),
    description: t.string({ description: 'What the schema describes (informational).' }),
    schema: t.field({ type: JsonScalar, required: true, description: 'The JSON schema itself.' }),
    strict: t.boolean({ description: "OpenAI's strict flag; accepted, and constraints are always strict here." }),
  }),
});

const ResponseFormatInput = builder.inputType('ResponseFormatInput', {
  description: 'Structured output: the form the answer must take (REST: response_format).',
  fields: (t) => ({
    type: t.field({ type: ResponseFormatType, required: true, description: 'The kind of constraint.' }),
    jsonSchema: t.field({ type: JsonSchemaFormatInput, description: 'JSON_SCHEMA: the schema.' }),
    choices: t.stringList({ description: 'CHOICE: the allowed answers (1..256 non-empty strings).' }),
    pattern: t.string({ description: 'REGEX: the regular expression the whole answer matches.' }),
  }),
});

const ChatInput = builder.inputType('ChatInput', {
  description: 'A chat request (REST: POST /v1/chat). Omitted fields take the REST defaults.',
  fields: (t) => ({
    prompt: t.string({ description: chatDocs('prompt', 'The prompt; not blank. Give this or messages') }),
    messages: t.field({
      type: [ChatMessageInput],
      description: "A conversation, read through the model's chat template, in place of prompt. Give this or prompt.",
    }),
    maxNewTokens: t.int({ description: chatDocs('max_new_tokens', 'Tokens to generate at most') }),
    temperature: t.float({ description: chatDocs('temperature', 'Sampling temperature; 0 is greedy') }),
    topP: t.float({ description: chatDocs('top_p', 'Nucleus sampling: sample from the smallest set of tokens with this much probability') }),
    topK: t.int({ description: chatDocs('top_k', 'Sample from the k most likely tokens; 0 is off') }),
    repetitionPenalty: t.float({ description: chatDocs('repetition_penalty', 'Penalty on tokens already present; 1 is off') }),
    seed: t.float({ description: chatDocs('seed', 'A whole number; the same seed and request give the same text') }),
    stop: t.stringList({ description: chatDocs('stop', 'Strings that end the answer (not included in it)') }),
    mode: t.field({ type: ChatMode, description: chatDocs('mode', 'Answer once, or refine') }),
    refineSteps: t.int({ description: chatDocs('refine_steps', 'REFINE mode: critique-and-rewrite rounds') }),
    critiqueTemperature: t.float({ description: chatDocs('critique_temperature', 'REFINE mode: sampling temperature of the critique') }),
    responseFormat: t.field({
      type: ResponseFormatInput,
      description: 'Structured output: constrain the answer (and REFINE mode rewrites) to JSON, a JSON schema, a choice or a regular expression.',
    }),
  }),
});

const StructuredOutcomeRef = builder.objectRef<NonNullable<ChatResult['structured']>>('StructuredOutcome').implement({
  description: 'How an answer constrained by responseFormat ended.',
  fields: (t) => ({
    type: t.field({ type: ResponseFormatType, description: 'The constraint it followed.', resolve: (s) => s.type }),
    complete: t.exposeBoolean('complete', {
      description: 'Whether the answer is a complete document; false when maxNewTokens or a stop string cut it first (it may then not parse).',
    }),
  }),
});

const RefineUsage = builder
  .objectRef<NonNullable<ChatResult['refineUsage']>>('RefineUsage')
  .implement({
    description: 'Tokens of the critique and rewrite steps of REFINE mode.',
    fields: (t) => ({
      promptTokens: t.exposeInt('promptTokens', { description: 'Prompt tokens read by those steps.' }),
      completionTokens: t.exposeInt('completionTokens', { description: 'Tokens generated by those steps.' }),
    }),
  });

const ChatResultRef = builder.objectRef<ChatResult>('ChatResult').implement({
  description: 'A chat answer with its usage and timing (the REST response in camelCase).',
  fields: (t) => ({
    response: t.exposeString('response', { description: 'The answer (the rewritten one in REFINE mode).' }),
    latencyMs: t.exposeInt('latencyMs', { description: 'Milliseconds from request to answer.' }),
    promptTokens: t.exposeInt('promptTokens', { description: 'Tokens of the prompt.' }),
    completionTokens: t.exposeInt('completionTokens', { description: 'Tokens of the answer.' }),
    totalTokens: t.exposeInt('totalTokens', { description: 'promptTokens + completionTokens.' }),
    model: t.exposeString('model', { description: 'The model that answered.' }),
    requestId: t.exposeString('requestId', { description: "The request's id (also in the x-request-id header)." }),
    finishReason: t.field({ type: FinishReason, description: 'Why generation stopped.', resolve: (r) => r.finishReason }),
    cacheHit: t.exposeBoolean('cacheHit', { description: 'Whether the answer came from the response cache.' }),
    contextWindow: t.exposeInt('contextWindow', { description: "The model's context window, in tokens." }),
    contextUsedPct: t.exposeFloat('contextUsedPct', { description: '100 × totalTokens / contextWindow, 4 decimals.' }),
    modelType: t.exposeString('modelType', { description: 'The kind of model (decoder-only).' }),
    attentionMasking: t.exposeString('attentionMasking', { description: 'How attention is masked (causal).' }),
    attentionHeads: t.exposeInt('attentionHeads', { description: 'Attention heads per layer.' }),
    hiddenSize: t.exposeInt('hiddenSize', { description: "The model's hidden size." }),
    estimatedAttentionOps: t.exposeFloat('estimatedAttentionOps', { description: 'totalTokens².' }),
    outputToInputRatio: t.exposeFloat('outputToInputRatio', { description: 'completionTokens / max(promptTokens, 1), 4 decimals.' }),
    refined: t.exposeBoolean('refined', { description: 'Whether the answer was refined (REFINE mode).' }),
    originalResponse: t.exposeString('originalResponse', { nullable: true, description: 'REFINE mode: the first answer; else null.' }),
    critique: t.exposeString('critique', { nullable: true, description: 'REFINE mode: the last critique; else null.' }),
    refineStepsUsed: t.exposeInt('refineStepsUsed', { description: 'Critique-and-rewrite rounds made.' }),
    seed: t.exposeFloat('seed', {
      nullable: true,
      description: 'The seed the sampler used (random when none was given), to reproduce the answer; null when nothing was sampled (greedy).',
    }),
    timeToFirstTokenMs: t.exposeFloat('timeToFirstTokenMs', { nullable: true, description: 'Milliseconds to the first generated token.' }),
    interTokenLatencyMs: t.exposeFloat('interTokenLatencyMs', { nullable: true, description: 'Mean milliseconds between tokens; null for fewer than two.' }),
    refineUsage: t.field({ type: RefineUsage, nullable: true, description: 'REFINE mode: tokens of its extra steps; else null.', resolve: (r) => r.refineUsage }),
    structured: t.field({
      type: StructuredOutcomeRef,
      nullable: true,
      description: 'With a responseFormat other than TEXT: its type and whether the answer is complete; else null.',
      resolve: (r) => r.structured ?? null,
    }),
  }),
});

type ChatStreamEvent = StreamEvent<ChatToken, ChatResult>;

const ChatStreamEventRef = builder.objectRef<ChatStreamEvent>('ChatStreamEvent').implement({
  description: 'One generated piece of text, or (last) the whole result.',
  fields: (t) => ({
    token: t.string({ nullable: true, description: 'The new text; null on the last event.', resolve: (e) => e.token?.text ?? null }),
    index: t.int({ nullable: true, description: 'Position of this piece among all streamed pieces (0-based); null on the last event.', resolve: (e) => e.token?.index ?? null }),
    phase: t.field({ type: ChatPhase, nullable: true, description: 'The step the token belongs to; null on the last event.', resolve: (e) => e.token?.phase ?? null }),
    done: t.boolean({ description: 'True on the last event, which carries the result.', resolve: (e) => e.result !== null }),
    result: t.field({ type: ChatResultRef, nullable: true, description: 'The whole result, on the last event only.', resolve: (e) => e.result }),
  }),
});

/** GraphQL input → the request both surfaces validate with one schema. */
const toChatRequest = ({ responseFormat: f, ...input }: typeof ChatInput.$inferInput) =>
  parseGraphQLInput(ChatRequestSchema, {
    ...input,
    // Nested input keeps the REST names, so one schema validates both (GraphQL's nulls dropped).
    responseFormat: f && {
      type: f.type,
      ...(f.jsonSchema ? { json_schema: Object.fromEntries(Object.entries(f.jsonSchema).filter(([, v]) => v !== null && v !== undefined)) } : {}),
      ...(f.choices ? { choices: f.choices } : {}),
      ...(f.pattern !== null && f.pattern !== undefined ? { pattern: f.pattern } : {}),
    },
  });

builder.mutationField('chat', (t) =>
  t.field({
    type: ChatResultRef,
    description: 'Generates an answer (REST: POST /v1/chat).',
    args: { input: t.arg({ type: ChatInput, required: true, description: 'The request.' }) },
    resolve: (_root, { input }, { ctx, services }) => services.chat.chat(toChatRequest(input), ctx),
  }),
);

builder.subscriptionField('chatStream', (t) =>
  t.field({
    type: ChatStreamEventRef,
    description: 'Streams a chat answer token by token; the last event carries the whole result.',
    args: { input: t.arg({ type: ChatInput, required: true, description: 'The request.' }) },
    subscribe: (_root, { input }, { ctx, services }) => {
      const request = toChatRequest(input);
      return streamEvents<ChatToken, ChatResult>((onToken, signal) => services.chat.chat(request, { ...ctx, signal }, onToken), ctx.signal);
    },
    resolve: (event) => event,
  }),
);
