import type { ComponentChildren } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { request, subscribe } from '../api.ts';
import { graphql, type ResultOf, type VariablesOf } from '../graphql.ts';
import { Badge, ErrorNote, href, ms, num, Scroll, usePoll, when } from '../ui.tsx';

const RagIndexes = graphql(`
  query RagIndexes {
    ragIndexes(first: 50) {
      nodes {
        indexId
        datasetId
        status
        error
        documentCount
        failedDocumentCount
        chunkCount
        embeddingModel
        createdAt
        progress {
          total
          completed
          failed
        }
      }
    }
  }
`);

const RagStream = graphql(`
  subscription RagStream($input: RagInput!) {
    ragStream(input: $input) {
      token
      done
      result {
        answer
        latencyMs
        citations {
          number
          cited
          hit {
            docId
            chunkId
            text
            score
          }
        }
        generation {
          model
          promptTokens
          completionTokens
          timeToFirstTokenMs
          finishReason
        }
        retrieval {
          indexId
          mode
          retrieved
          used
          latencyMs
        }
      }
    }
  }
`);

type Answer = NonNullable<ResultOf<typeof RagStream>['ragStream']['result']>;
type RagInput = VariablesOf<typeof RagStream>['input'];

/** The answer's text with each [n] marked and linked to its citation. */
function highlighted(answer: string, numbers: Set<number>, focus: (n: number) => void): ComponentChildren[] {
  const out: ComponentChildren[] = [];
  let last = 0;
  for (const m of answer.matchAll(/\[(\d+)\]/g)) {
    const n = Number(m[1]);
    if (!numbers.has(n)) continue;
    out.push(answer.slice(last, m.index));
    out.push(
      <button type="button" class="cite-mark" key={`${m.index}`} aria-label={`Source ${n}`} onClick={() => focus(n)}>
        <mark>[{n}]</mark>
      </button>,
    );
    last = m.index! + m[0].length;
  }
  out.push(answer.slice(last));
  return out;
}

export function Rag() {
  const [indexes, setIndexes] = useState<ResultOf<typeof RagIndexes>['ragIndexes']['nodes'] | null>(null);
  const building = indexes?.some((i) => i.status === 'PROCESSING') ?? true;
  // Every 2 s while an index builds, else every 10 s (builds started elsewhere).
  const listError = usePoll(async (signal) => setIndexes((await request(RagIndexes, {}, signal)).ragIndexes.nodes), building ? 2000 : 10_000, []);
  const ready = (indexes ?? []).filter((i) => i.status === 'READY');
  const [indexId, setIndexId] = useState('');
  const [query, setQuery] = useState('');
  const [mode, setMode] = useState<'HYBRID' | 'LEXICAL' | 'DENSE'>('HYBRID');
  const [topK, setTopK] = useState('5');
  const [maxNewTokens, setMaxNewTokens] = useState('80');
  const [temperature, setTemperature] = useState('0');
  const [streamed, setStreamed] = useState('');
  const [answer, setAnswer] = useState<Answer | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const list = useRef<HTMLOListElement>(null);
  const chosen = indexId || ready[0]?.indexId || '';

  const ask = async (e: Event) => {
    e.preventDefault();
    if (!chosen) return setError(new Error('No index is ready: upload a RAG corpus on the Datasets page.'));
    setBusy(true);
    setError(null);
    setAnswer(null);
    setStreamed('');
    const input: RagInput = { indexId: chosen, query, mode, topK: Number(topK), maxNewTokens: Number(maxNewTokens), temperature: Number(temperature) };
    try {
      for await (const { ragStream: ev } of subscribe(RagStream, { input })) {
        if (ev.done && ev.result) setAnswer(ev.result);
        else if (ev.token) setStreamed((s) => s + ev.token);
      }
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const focusCitation = (n: number) => list.current?.querySelector<HTMLElement>(`[data-number="${n}"]`)?.focus();

  return (
    <section>
      <h1 tabIndex={-1}>RAG</h1>
      <h2>Indexes</h2>
      <ErrorNote error={listError} />
      <Scroll label={'RAG indexes'}>
        <table id="rag-indexes" class="striped">
          <thead>
            <tr>
              <th scope="col">Index</th>
              <th scope="col">Corpus</th>
              <th scope="col">Status</th>
              <th scope="col">Documents</th>
              <th scope="col">Chunks</th>
              <th scope="col">Embedding model</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {indexes?.map((i) => (
              <tr key={i.indexId} data-index={i.indexId}>
                <td>
                  <code>{i.indexId}</code>
                </td>
                <td>
                  <a href={href('datasets', i.datasetId)}>
                    <code>{i.datasetId}</code>
                  </a>
                </td>
                <td>
                  <Badge value={i.status} /> {i.error && <small>{i.error}</small>}
                </td>
                <td>
                  {i.status === 'PROCESSING' ? (
                    <span class="progress">
                      <progress value={i.progress.completed + i.progress.failed} max={Math.max(i.progress.total, 1)} aria-label={`Build progress of ${i.indexId}`} />
                      <span>
                        {i.progress.completed + i.progress.failed}/{i.progress.total}
                      </span>
                    </span>
                  ) : (
                    `${i.documentCount}${i.failedDocumentCount ? ` (${i.failedDocumentCount} failed)` : ''}`
                  )}
                </td>
                <td>{i.chunkCount}</td>
                <td>{i.embeddingModel ?? '–'}</td>
                <td>{when(i.createdAt)}</td>
              </tr>
            ))}
            {indexes && indexes.length === 0 && (
              <tr>
                <td colSpan={7}>
                  No indexes yet: <a href={href('datasets')}>upload a RAG corpus</a> and its index is built.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </Scroll>
      <h2>Ask</h2>
      <form onSubmit={ask} id="rag-form">
        <label>
          Index
          <select id="rag-index" value={chosen} onChange={(e) => setIndexId(e.currentTarget.value)} required>
            {ready.length === 0 && <option value="">no index is ready</option>}
            {ready.map((i) => (
              <option key={i.indexId} value={i.indexId}>
                {i.indexId} ({i.datasetId}, {i.documentCount} documents)
              </option>
            ))}
          </select>
        </label>
        <label>
          Question
          <textarea id="rag-query" rows={2} value={query} onInput={(e) => setQuery(e.currentTarget.value)} required maxLength={4000} />
        </label>
        <div class="grid-auto">
          <label>
            Ranking
            <select id="rag-mode" value={mode} onChange={(e) => setMode(e.currentTarget.value as typeof mode)}>
              <option value="HYBRID">hybrid</option>
              <option value="LEXICAL">lexical</option>
              <option value="DENSE">dense</option>
            </select>
          </label>
          <label>
            Chunks to retrieve
            <input id="rag-topk" type="number" min={1} max={50} value={topK} onInput={(e) => setTopK(e.currentTarget.value)} />
          </label>
          <label>
            Max new tokens
            <input id="rag-max-new-tokens" type="number" min={1} max={1024} value={maxNewTokens} onInput={(e) => setMaxNewTokens(e.currentTarget.value)} />
          </label>
          <label>
            Temperature
            <input id="rag-temperature" type="number" min={0} max={2} step={0.05} value={temperature} onInput={(e) => setTemperature(e.currentTarget.value)} />
          </label>
        </div>
        <button type="submit" aria-busy={busy ? 'true' : undefined} disabled={busy}>
          Ask
        </button>
      </form>
      <ErrorNote error={error} />
      {(streamed || answer) && (
        <div id="rag-answer">
          <h2>Answer</h2>
          <p class="output" tabIndex={0} aria-label="The answer">
            {answer ? highlighted(answer.answer, new Set(answer.citations.map((c) => c.number)), focusCitation) : streamed}
          </p>
          {answer && (
            <>
              <p class="muted">
                {answer.generation.completionTokens} tokens by {answer.generation.model}, first after {ms(answer.generation.timeToFirstTokenMs)}; {answer.retrieval.used} of{' '}
                {answer.retrieval.retrieved} chunks used ({answer.retrieval.mode.toLowerCase()}, retrieval {ms(answer.retrieval.latencyMs)}); {ms(answer.latencyMs)} in all.
              </p>
              <h3>Sources</h3>
              <ol id="rag-citations" class="citations" ref={list}>
                {answer.citations.map((c) => (
                  <li key={c.number} value={c.number} data-number={c.number} tabIndex={-1} class={c.cited ? 'cited' : ''}>
                    <p>
                      <strong>[{c.number}]</strong> <code>{c.hit.docId}</code> score {num(c.hit.score, 3)} {c.cited ? <mark>cited in the answer</mark> : <span class="muted">not cited</span>}
                    </p>
                    <blockquote>{c.hit.text}</blockquote>
                  </li>
                ))}
              </ol>
            </>
          )}
        </div>
      )}
    </section>
  );
}
