import type { ChatResult, ChatToken } from '../services/chat.js';
import { ChatRequestSchema } from '../services/chat-schema.js';
import { builder } from './builder.js';
import { parseGraphQLInput } from './input.js';

const ChatMode = builder.enumType('ChatMode', {
  values: { SINGLE: { value: 'single' }, REFINE: { value: 'refine' } } as const,
});

const ChatInput = builder.inputType('ChatInput', {
  description: 'A chat request (REST: POST /v1/chat). Omitted fields take the REST defaults.',
  fields: (t) => ({
    prompt: t.string({ required: true }),
    maxNewTokens: t.int({ description: '1..1024, default 160' }),
    temperature: t.float({ description: '0..2, default 0.2; 0 is greedy' }),
    topP: t.float({ description: '0..1, default 0.95' }),
    topK: t.int({ description: '0 (off) or more, default 0' }),
    repetitionPenalty: t.float({ description: 'default 1 (off)' }),
    seed: t.float({ description: 'Integer 0..4294967295; same seed and request give the same text' }),
    stop: t.stringList({ description: 'Stop strings' }),
    mode: t.field({ type: ChatMode }),
    refineSteps: t.int({ description: '1..3, default 1' }),
    critiqueTemperature: t.float({ description: '0..2, default 0.2' }),
  }),
});

const RefineUsage = builder
  .objectRef<NonNullable<ChatResult['refineUsage']>>('RefineUsage')
  .implement({
    fields: (t) => ({
      promptTokens: t.exposeInt('promptTokens'),
      completionTokens: t.exposeInt('completionTokens'),
    }),
  });

const ChatResultRef = builder.objectRef<ChatResult>('ChatResult').implement({
  description: 'A chat answer with its usage and timing (the REST response in camelCase).',
  fields: (t) => ({
    response: t.exposeString('response'),
    latencyMs: t.exposeInt('latencyMs'),
    promptTokens: t.exposeInt('promptTokens'),
    completionTokens: t.exposeInt('completionTokens'),
    totalTokens: t.exposeInt('totalTokens'),
    model: t.exposeString('model'),
    requestId: t.exposeString('requestId'),
    finishReason: t.exposeString('finishReason'),
    cacheHit: t.exposeBoolean('cacheHit'),
    contextWindow: t.exposeInt('contextWindow'),
    contextUsedPct: t.exposeFloat('contextUsedPct'),
    modelType: t.exposeString('modelType'),
    attentionMasking: t.exposeString('attentionMasking'),
    attentionHeads: t.exposeInt('attentionHeads'),
    hiddenSize: t.exposeInt('hiddenSize'),
    estimatedAttentionOps: t.exposeFloat('estimatedAttentionOps'),
    outputToInputRatio: t.exposeFloat('outputToInputRatio'),
    refined: t.exposeBoolean('refined'),
    originalResponse: t.exposeString('originalResponse', { nullable: true }),
    critique: t.exposeString('critique', { nullable: true }),
    refineStepsUsed: t.exposeInt('refineStepsUsed'),
    seed: t.exposeFloat('seed', { nullable: true }),
    timeToFirstTokenMs: t.exposeFloat('timeToFirstTokenMs', { nullable: true }),
    interTokenLatencyMs: t.exposeFloat('interTokenLatencyMs', { nullable: true }),
    refineUsage: t.field({ type: RefineUsage, nullable: true, resolve: (r) => r.refineUsage }),
  }),
});

interface ChatStreamEvent {
  token: ChatToken | null;
  result: ChatResult | null;
}

const ChatStreamEventRef = builder.objectRef<ChatStreamEvent>('ChatStreamEvent').implement({
  description: 'One generated piece of text, or (last) the whole result.',
  fields: (t) => ({
    token: t.string({ nullable: true, resolve: (e) => e.token?.text ?? null }),
    index: t.int({ nullable: true, resolve: (e) => e.token?.index ?? null }),
    phase: t.string({ nullable: true, description: 'answer, critique or rewrite', resolve: (e) => e.token?.phase ?? null }),
    done: t.boolean({ resolve: (e) => e.result !== null }),
    result: t.field({ type: ChatResultRef, nullable: true, resolve: (e) => e.result }),
  }),
});

/** GraphQL input → the request both surfaces validate with one schema. */
const toChatRequest = (input: typeof ChatInput.$inferInput) => parseGraphQLInput(ChatRequestSchema, input);

builder.mutationField('chat', (t) =>
  t.field({
    type: ChatResultRef,
    args: { input: t.arg({ type: ChatInput, required: true }) },
    resolve: (_root, { input }, { ctx, services }) => services.chat.chat(toChatRequest(input), ctx),
  }),
);

builder.subscriptionField('chatStream', (t) =>
  t.field({
    type: ChatStreamEventRef,
    description: 'Streams a chat answer token by token; the last event carries the whole result.',
    args: { input: t.arg({ type: ChatInput, required: true }) },
    subscribe: (_root, { input }, { ctx, services }) => {
      const request = toChatRequest(input);
      return streamChat((onToken, signal) => services.chat.chat(request, { ...ctx, signal }, onToken), ctx.signal);
    },
    resolve: (event) => event,
  }),
);

/**
 * Bridges the service's token callback to an async iterator. The subscription
 * ending early (client gone) aborts the generation.
 */
async function* streamChat(
  run: (onToken: (t: ChatToken) => void, signal: AbortSignal) => Promise<ChatResult>,
  parent: AbortSignal,
): AsyncGenerator<ChatStreamEvent> {
  const controller = new AbortController();
  const onParentAbort = () => controller.abort();
  parent.addEventListener('abort', onParentAbort, { once: true });
  const pending: ChatStreamEvent[] = [];
  let wake: (() => void) | undefined;
  let finished = false;
  let failure: unknown;
  const push = (e: ChatStreamEvent) => {
    pending.push(e);
    wake?.();
  };
  run((token) => push({ token, result: null }), controller.signal)
    .then((result) => push({ token: null, result }))
    .catch((err: unknown) => {
      failure = err;
    })
    .finally(() => {
      finished = true;
      wake?.();
    });
  try {
    for (;;) {
      const next = pending.shift();
      if (next) {
        yield next;
        if (next.result) return;
        continue;
      }
      if (finished) {
        if (failure !== undefined) throw failure;
        return;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    parent.removeEventListener('abort', onParentAbort);
    controller.abort();
  }
}
