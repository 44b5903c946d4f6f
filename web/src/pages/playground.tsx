import { useEffect, useRef, useState } from 'preact/hooks';
import { operationBody, subscribe } from '../api.ts';
import { graphql, type ResultOf, type VariablesOf } from '../graphql.ts';
import { ErrorNote, Facts, ms, num } from '../ui.tsx';

export const ChatStream = graphql(`
  subscription ChatStream($input: ChatInput!) {
    chatStream(input: $input) {
      token
      index
      phase
      done
      result {
        response
        model
        requestId
        finishReason
        cacheHit
        promptTokens
        completionTokens
        totalTokens
        latencyMs
        timeToFirstTokenMs
        interTokenLatencyMs
        contextWindow
        contextUsedPct
        seed
        refined
        critique
        structured {
          type
          complete
        }
      }
    }
  }
`);

type ChatInput = VariablesOf<typeof ChatStream>['input'];
type Result = NonNullable<ResultOf<typeof ChatStream>['chatStream']['result']>;
type Role = 'SYSTEM' | 'USER' | 'ASSISTANT';
type FormatType = 'TEXT' | 'JSON_OBJECT' | 'JSON_SCHEMA' | 'CHOICE' | 'REGEX';

interface Form {
  useMessages: boolean;
  prompt: string;
  messages: Array<{ role: Role; content: string }>;
  maxNewTokens: string;
  temperature: string;
  topP: string;
  topK: string;
  repetitionPenalty: string;
  seed: string;
  stop: string;
  mode: 'SINGLE' | 'REFINE';
  refineSteps: string;
  critiqueTemperature: string;
  format: FormatType;
  choices: string;
  pattern: string;
  schema: string;
}

const INITIAL: Form = {
  useMessages: false,
  prompt: 'Once upon a time',
  messages: [{ role: 'USER', content: 'Tell me a story about a cat.' }],
  maxNewTokens: '64',
  temperature: '0.2',
  topP: '0.95',
  topK: '0',
  repetitionPenalty: '1',
  seed: '',
  stop: '',
  mode: 'SINGLE',
  refineSteps: '1',
  critiqueTemperature: '0.2',
  format: 'TEXT',
  choices: 'yes\nno',
  pattern: '[A-Z][a-z]+',
  schema: '{"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}',
};

const lines = (s: string) => s.split('\n').map((l) => l.trim()).filter(Boolean);

/** The request exactly as sent: every sampling field explicit, optional ones only when set. */
function toInput(f: Form): ChatInput {
  const input: ChatInput = {
    ...(f.useMessages ? { messages: f.messages.map((m) => ({ role: m.role, content: m.content })) } : { prompt: f.prompt }),
    maxNewTokens: Number(f.maxNewTokens),
    temperature: Number(f.temperature),
    topP: Number(f.topP),
    topK: Number(f.topK),
    repetitionPenalty: Number(f.repetitionPenalty),
    mode: f.mode,
  };
  if (f.seed.trim() !== '') input.seed = Number(f.seed);
  if (lines(f.stop).length) input.stop = lines(f.stop);
  if (f.mode === 'REFINE') {
    input.refineSteps = Number(f.refineSteps);
    input.critiqueTemperature = Number(f.critiqueTemperature);
  }
  if (f.format !== 'TEXT') {
    input.responseFormat = { type: f.format };
    if (f.format === 'CHOICE') input.responseFormat.choices = lines(f.choices);
    if (f.format === 'REGEX') input.responseFormat.pattern = f.pattern;
    if (f.format === 'JSON_SCHEMA') input.responseFormat.jsonSchema = { schema: JSON.parse(f.schema) as unknown };
  }
  return input;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The same request for REST POST /v1/chat (snake_case, lower-case enums), streamed. */
function restBody(input: ChatInput): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined || v === null) continue;
    if (k === 'messages') out.messages = (v as Array<{ role: string; content: string }>).map((m) => ({ role: m.role.toLowerCase(), content: m.content }));
    else if (k === 'mode') out.mode = String(v).toLowerCase();
    else if (k === 'responseFormat') {
      const rf = v as { type: string; choices?: string[] | null; pattern?: string | null; jsonSchema?: { schema: unknown } | null };
      out.response_format = {
        type: rf.type.toLowerCase(),
        ...(rf.choices ? { choices: rf.choices } : {}),
        ...(rf.pattern ? { pattern: rf.pattern } : {}),
        ...(rf.jsonSchema ? { json_schema: { name: 'answer', schema: rf.jsonSchema.schema } } : {}),
      };
    } else out[snake(k)] = v;
  }
  return { ...out, stream: true };
}

function snippets(input: ChatInput): Record<'curl' | 'graphql' | 'openai', string> {
  const origin = location.origin;
  const rest = restBody(input);
  const curl = `curl -sN ${origin}/v1/chat \\\n  -H "x-api-key: $API_KEY" -H 'content-type: application/json' \\\n  -d ${shellQuote(JSON.stringify(rest, null, 2))}`;
  const body = operationBody(ChatStream, { input });
  const gql = `# POST ${origin}/graphql with headers x-api-key and accept: text/event-stream\n${body.query}\n# variables\n${JSON.stringify(body.variables, null, 2)}`;
  // OpenAI's names: max_tokens; our additions (top_k, repetition_penalty) go as extra body fields.
  const params: Record<string, unknown> = {
    model: 'MODEL',
    max_tokens: input.maxNewTokens,
    temperature: input.temperature,
    top_p: input.topP,
    ...(input.seed !== undefined ? { seed: input.seed } : {}),
    ...(input.stop ? { stop: input.stop } : {}),
    stream: true,
  };
  const extra = { top_k: input.topK, repetition_penalty: input.repetitionPenalty };
  const rf = rest.response_format as { type: string } | undefined;
  const call = input.messages
    ? `client.chat.completions.create(${JSON.stringify(
        {
          ...params,
          messages: (input.messages as Array<{ role: string; content: string }>).map((m) => ({ role: m.role.toLowerCase(), content: m.content })),
          ...(rf ? { response_format: rf } : {}),
        },
        null,
        2,
      ).replace('"MODEL"', 'model')}, { body: ${JSON.stringify(extra)} } as never)`
    : `client.completions.create(${JSON.stringify({ ...params, prompt: input.prompt, ...(rf ? { response_format: rf } : {}) }, null, 2).replace('"MODEL"', 'model')}, { body: ${JSON.stringify(extra)} } as never)`;
  const openai = `import OpenAI from 'openai';\n\nconst client = new OpenAI({ baseURL: '${origin}/v1', apiKey: process.env.API_KEY });\nconst model = (await client.models.list()).data[0]!.id;\nconst stream = await ${call};\nfor await (const chunk of stream) process.stdout.write(${input.messages ? "chunk.choices[0]?.delta?.content ?? ''" : "chunk.choices[0]?.text ?? ''"});\n`;
  return { curl, graphql: gql, openai };
}

interface Piece {
  phase: string;
  text: string;
}

export function Playground() {
  const [f, setF] = useState<Form>(INITIAL);
  const [pieces, setPieces] = useState<Piece[]>([]);
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<Result | null>(null);
  const [live, setLive] = useState<{ tokens: number; ttftMs: number | null; meanGapMs: number | null }>({ tokens: 0, ttftMs: null, meanGapMs: null });
  const [snippet, setSnippet] = useState<{ kind: string; text: string; copied: boolean } | null>(null);
  const abort = useRef<AbortController | null>(null);

  const set = <K extends keyof Form>(k: K, v: Form[K]) => setF((old) => ({ ...old, [k]: v }));
  // Leaving the page stops a stream under way.
  useEffect(() => () => abort.current?.abort(), []);

  const run = async (e: Event) => {
    e.preventDefault();
    let input: ChatInput;
    try {
      input = toInput(f);
    } catch (err) {
      setError(new Error(`The JSON schema is not valid JSON: ${(err as Error).message}`));
      return;
    }
    abort.current?.abort();
    const ctl = new AbortController();
    abort.current = ctl;
    setRunning(true);
    setError(null);
    setResult(null);
    setPieces([]);
    setLive({ tokens: 0, ttftMs: null, meanGapMs: null });
    const started = performance.now();
    let first: number | null = null;
    let last = 0;
    let tokens = 0;
    try {
      for await (const { chatStream: ev } of subscribe(ChatStream, { input }, ctl.signal)) {
        if (ev.done) {
          if (ev.result) setResult(ev.result);
          continue;
        }
        const now = performance.now();
        if (first === null) first = now;
        last = now;
        tokens += 1;
        const t = tokens;
        const firstAt = first;
        setPieces((old) => {
          const phase = ev.phase ?? 'ANSWER';
          const tail = old[old.length - 1];
          if (tail && tail.phase === phase) return [...old.slice(0, -1), { phase, text: tail.text + (ev.token ?? '') }];
          return [...old, { phase, text: ev.token ?? '' }];
        });
        setLive({ tokens: t, ttftMs: firstAt - started, meanGapMs: t > 1 ? (last - firstAt) / (t - 1) : null });
      }
    } catch (err) {
      if (!ctl.signal.aborted) setError(err);
    } finally {
      if (abort.current === ctl) abort.current = null;
      setRunning(false);
    }
  };

  const copy = async (kind: 'curl' | 'graphql' | 'openai') => {
    let input: ChatInput;
    try {
      input = toInput(f);
    } catch (err) {
      setError(err);
      return;
    }
    const text = snippets(input)[kind];
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      // No clipboard permission: the text is shown to copy by hand.
    }
    setSnippet({ kind, text, copied });
  };

  const numField = (id: keyof Form, label: string, props: Record<string, string | number>) => (
    <label>
      {label}
      <input id={`pg-${id}`} name={id} type="number" value={f[id] as string} onInput={(e) => set(id, e.currentTarget.value as never)} {...props} />
    </label>
  );

  return (
    <section>
      <h1 tabIndex={-1}>Playground</h1>
      <form onSubmit={run} class="playground">
        <fieldset>
          <legend>Input</legend>
          <label>
            <input type="radio" name="input-kind" checked={!f.useMessages} onChange={() => set('useMessages', false)} />
            Prompt
          </label>
          <label>
            <input type="radio" name="input-kind" checked={f.useMessages} onChange={() => set('useMessages', true)} />
            Chat messages
          </label>
        </fieldset>
        {f.useMessages ? (
          <fieldset class="messages">
            <legend>Messages</legend>
            {f.messages.map((m, i) => (
              <div class="message" key={i}>
                <label>
                  Role of message {i + 1}
                  <select value={m.role} onChange={(e) => set('messages', f.messages.map((x, j) => (j === i ? { ...x, role: e.currentTarget.value as Role } : x)))}>
                    <option value="SYSTEM">system</option>
                    <option value="USER">user</option>
                    <option value="ASSISTANT">assistant</option>
                  </select>
                </label>
                <label>
                  Content of message {i + 1}
                  <textarea rows={2} value={m.content} onInput={(e) => set('messages', f.messages.map((x, j) => (j === i ? { ...x, content: e.currentTarget.value } : x)))} />
                </label>
                <button type="button" class="secondary outline small" disabled={f.messages.length === 1} onClick={() => set('messages', f.messages.filter((_, j) => j !== i))}>
                  Remove message {i + 1}
                </button>
              </div>
            ))}
            <button type="button" class="secondary small" onClick={() => set('messages', [...f.messages, { role: 'USER', content: '' }])}>
              Add a message
            </button>
          </fieldset>
        ) : (
          <label>
            Prompt
            <textarea id="pg-prompt" name="prompt" rows={3} value={f.prompt} onInput={(e) => set('prompt', e.currentTarget.value)} required />
          </label>
        )}
        <details open>
          <summary>Sampling</summary>
          <div class="grid-auto">
            {numField('maxNewTokens', 'Max new tokens', { min: 1, max: 1024, step: 1, required: 'required' })}
            {numField('temperature', 'Temperature (0 = greedy)', { min: 0, max: 2, step: 0.05, required: 'required' })}
            {numField('topP', 'Top p', { min: 0, max: 1, step: 0.01, required: 'required' })}
            {numField('topK', 'Top k (0 = off)', { min: 0, max: 100000, step: 1, required: 'required' })}
            {numField('repetitionPenalty', 'Repetition penalty (1 = off)', { min: 0.01, max: 10, step: 0.01, required: 'required' })}
            {numField('seed', 'Seed (blank = random)', { min: 0, max: 4294967295, step: 1 })}
          </div>
          <label>
            Stop strings (one a line)
            <textarea id="pg-stop" name="stop" rows={2} value={f.stop} onInput={(e) => set('stop', e.currentTarget.value)} />
          </label>
          <div class="grid-auto">
            <label>
              Mode
              <select id="pg-mode" name="mode" value={f.mode} onChange={(e) => set('mode', e.currentTarget.value as Form['mode'])}>
                <option value="SINGLE">single answer</option>
                <option value="REFINE">refine (critique and rewrite)</option>
              </select>
            </label>
            {f.mode === 'REFINE' && numField('refineSteps', 'Refine steps', { min: 1, max: 3, step: 1 })}
            {f.mode === 'REFINE' && numField('critiqueTemperature', 'Critique temperature', { min: 0, max: 2, step: 0.05 })}
            <label>
              Response format
              <select id="pg-format" name="format" value={f.format} onChange={(e) => set('format', e.currentTarget.value as FormatType)}>
                <option value="TEXT">free text</option>
                <option value="JSON_OBJECT">any JSON object</option>
                <option value="JSON_SCHEMA">JSON schema</option>
                <option value="CHOICE">one of a list</option>
                <option value="REGEX">regular expression</option>
              </select>
            </label>
          </div>
          {f.format === 'CHOICE' && (
            <label>
              Choices (one a line)
              <textarea rows={2} value={f.choices} onInput={(e) => set('choices', e.currentTarget.value)} />
            </label>
          )}
          {f.format === 'REGEX' && (
            <label>
              Pattern
              <input type="text" value={f.pattern} onInput={(e) => set('pattern', e.currentTarget.value)} />
            </label>
          )}
          {f.format === 'JSON_SCHEMA' && (
            <label>
              JSON schema
              <textarea rows={3} value={f.schema} onInput={(e) => set('schema', e.currentTarget.value)} />
            </label>
          )}
        </details>
        <div class="actions">
          <button type="submit" id="pg-generate" aria-busy={running ? 'true' : undefined} disabled={running}>
            Generate
          </button>
          <button type="button" class="secondary" disabled={!running} onClick={() => abort.current?.abort()}>
            Stop
          </button>
          <span class="copy-as" role="group" aria-label="Copy the request">
            Copy as:
            <button type="button" class="outline small" onClick={() => copy('curl')}>
              curl
            </button>
            <button type="button" class="outline small" onClick={() => copy('graphql')}>
              GraphQL
            </button>
            <button type="button" class="outline small" onClick={() => copy('openai')}>
              OpenAI SDK
            </button>
          </span>
        </div>
      </form>
      {snippet && (
        <div class="snippet">
          <p role="status">
            {snippet.copied ? `Copied the ${snippet.kind} request to the clipboard.` : `The ${snippet.kind} request (select and copy it):`} Set <code>API_KEY</code> to your key.
          </p>
          <pre id="snippet" data-kind={snippet.kind} tabIndex={0} aria-label={`The request as ${snippet.kind}`}>
            {snippet.text}
          </pre>
        </div>
      )}
      <ErrorNote error={error} />
      <h2>Answer</h2>
      <div id="output" class="output" aria-busy={running ? 'true' : 'false'} data-tokens={live.tokens} tabIndex={0} aria-label="The generated answer">
        {pieces.length === 0 && !running ? <span class="muted">Nothing generated yet.</span> : null}
        {pieces.map((p, i) => (
          <div key={i} class={`phase phase-${p.phase.toLowerCase()}`}>
            {(f.mode === 'REFINE' || pieces.length > 1) && <strong class="phase-name">{p.phase.toLowerCase()}</strong>}
            <span class="text">{p.text}</span>
          </div>
        ))}
      </div>
      <div id="live-stats" class="stats" role="status" aria-live="polite">
        {running && <span>Streaming: {live.tokens} tokens, first after {ms(live.ttftMs)}, {live.meanGapMs === null ? '–' : ms(live.meanGapMs)} between tokens (in this browser).</span>}
      </div>
      {result && (
        <div id="result-stats">
          <h2>Result</h2>
          <Facts
            items={[
              ['Time to first token', ms(result.timeToFirstTokenMs)],
              ['Inter-token latency', ms(result.interTokenLatencyMs)],
              ['Latency', ms(result.latencyMs)],
              ['Prompt tokens', num(result.promptTokens)],
              ['Completion tokens', num(result.completionTokens)],
              ['Total tokens', `${result.totalTokens} of ${result.contextWindow} (${num(result.contextUsedPct, 2)}%)`],
              ['Cache hit', result.cacheHit ? 'yes' : 'no'],
              ['Finish reason', result.finishReason.toLowerCase()],
              ['Seed', result.seed === null || result.seed === undefined ? 'none (greedy)' : String(result.seed)],
              ['Model', result.model],
              ['Request id', <code>{result.requestId}</code>],
              ...(result.structured ? ([['Structured', `${result.structured.type.toLowerCase()}, ${result.structured.complete ? 'complete' : 'cut short'}`]] as Array<[string, string]>) : []),
            ]}
          />
        </div>
      )}
    </section>
  );
}
