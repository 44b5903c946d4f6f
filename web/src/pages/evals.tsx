import { useEffect, useMemo, useState } from 'preact/hooks';
import { downloadFile, fetchText, request, subscribe } from '../api.ts';
import { BarChart, COLORS } from '../charts.tsx';
import { graphql, type ResultOf, type VariablesOf } from '../graphql.ts';
import { Badge, ErrorNote, Facts, go, href, ms, num, pct, Scroll, useLoad, usePoll, when } from '../ui.tsx';

const CRITERIA = ['OVERALL', 'ACCURACY', 'CLARITY', 'FACTUALITY', 'REASONING'] as const;
type Criterion = (typeof CRITERIA)[number];
const FINAL = new Set(['COMPLETED', 'COMPLETED_WITH_FAILURES', 'FAILED', 'CANCELLED']);
/** The latency histogram reads every record's latency from predictions.jsonl: drawn for runs up to this size. */
const LATENCY_HISTOGRAM_MAX_RECORDS = 20_000;

const EvalSets = graphql(`
  query EvalSets {
    datasets(first: 100, type: EVAL_SET, status: READY) {
      nodes {
        datasetId
        name
        recordCount
      }
    }
  }
`);

const StartBatchEval = graphql(`
  mutation StartBatchEval($input: StartBatchEvalInput!) {
    startBatchEval(input: $input) {
      batchEvalId
      status
    }
  }
`);

const BatchEvals = graphql(`
  query BatchEvals($first: Int, $after: String) {
    batchEvals(first: $first, after: $after) {
      nodes {
        batchEvalId
        datasetId
        status
        criteria
        createdAt
        completedAt
        progress {
          total
          completed
          failed
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const RunQuery = graphql(`
  query BatchEvalRun($id: String!) {
    batchEval(id: $id) {
      batchEvalId
      datasetId
      status
      criteria
      params
      error
      createdAt
      startedAt
      completedAt
      progress {
        total
        completed
        failed
      }
      result {
        totalItems
        failedItems
        passRate
        passRateCi95Lower
        passRateCi95Upper
        latencyP50Ms
        latencyP95Ms
        meanScores
        totalInputTokens
        totalOutputTokens
      }
    }
  }
`);

const DistributionQuery = graphql(`
  query Distribution($id: String!, $criterion: Criterion!) {
    batchEval(id: $id) {
      distribution(criterion: $criterion) {
        criterion
        count
        mean
        p50
        buckets {
          score
          count
        }
      }
    }
  }
`);

const FailuresQuery = graphql(`
  query Failures($id: String!, $first: Int, $after: String) {
    batchEval(id: $id) {
      failures(first: $first, after: $after) {
        count
        nodes {
          index
          recordId
          status
          reason
          message
          response
          latencyMs
          scores {
            criterion
            score
            evaluatorError
          }
        }
        pageInfo {
          hasNextPage
          endCursor
        }
      }
    }
  }
`);

const Progress = graphql(`
  subscription BatchEvalProgress($id: ID!) {
    batchEvalProgress(id: $id) {
      batchEvalId
      status
      progress {
        total
        completed
        failed
      }
    }
  }
`);

const Cancel = graphql(`
  mutation CancelBatchEval($id: String!) {
    cancelBatchEval(id: $id) {
      status
    }
  }
`);

type Run = ResultOf<typeof RunQuery>['batchEval'];
type Distribution = ResultOf<typeof DistributionQuery>['batchEval']['distribution'];
type Failure = ResultOf<typeof FailuresQuery>['batchEval']['failures']['nodes'][number];
type StartInput = VariablesOf<typeof StartBatchEval>['input'];

function ProgressBar({ p, label }: { p: { total: number; completed: number; failed: number }; label: string }) {
  const done = p.completed + p.failed;
  return (
    <span class="progress">
      <progress value={done} max={Math.max(p.total, 1)} aria-label={label} />
      <span>
        {done}/{p.total}
        {p.failed ? ` (${p.failed} failed)` : ''}
      </span>
    </span>
  );
}

function StartForm({ onStarted, initialDatasetId }: { onStarted: (id: string) => void; initialDatasetId?: string | undefined }) {
  const [sets, setsError] = useLoad((signal) => request(EvalSets, {}, signal), []);
  const [datasetId, setDatasetId] = useState(initialDatasetId ?? '');
  const [criteria, setCriteria] = useState<Set<Criterion>>(new Set(['OVERALL']));
  const [judge, setJudge] = useState<'DETERMINISTIC' | 'MODEL'>('DETERMINISTIC');
  const [concurrency, setConcurrency] = useState('4');
  const [maxNewTokens, setMaxNewTokens] = useState('64');
  const [temperature, setTemperature] = useState('0');
  const [seed, setSeed] = useState('0');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const options = sets?.datasets.nodes ?? [];
  const chosen = (options.some((d) => d.datasetId === datasetId) ? datasetId : options[0]?.datasetId) ?? '';

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!chosen) return setError(new Error('Upload an evaluation set first.'));
    if (criteria.size === 0) return setError(new Error('Choose at least one criterion.'));
    setBusy(true);
    setError(null);
    try {
      const input: StartInput = {
        datasetId: chosen,
        criteria: CRITERIA.filter((c) => criteria.has(c)),
        judge,
        concurrency: Number(concurrency),
        maxNewTokens: Number(maxNewTokens),
        temperature: Number(temperature),
        seed: Number(seed),
      };
      const { startBatchEval } = await request(StartBatchEval, { input });
      onStarted(startBatchEval.batchEvalId);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <article>
      <header>
        <h2>Start a batch evaluation</h2>
      </header>
      <ErrorNote error={setsError} />
      <form onSubmit={submit} id="start-form">
        <label>
          Dataset (evaluation set)
          <select id="eval-dataset" value={chosen} onChange={(e) => setDatasetId(e.currentTarget.value)} required>
            {options.length === 0 && <option value="">no evaluation sets yet</option>}
            {options.map((d) => (
              <option key={d.datasetId} value={d.datasetId}>
                {d.name} ({d.recordCount} records, {d.datasetId})
              </option>
            ))}
          </select>
        </label>
        <fieldset>
          <legend>Criteria</legend>
          {CRITERIA.map((c) => (
            <label key={c} class="inline">
              <input
                type="checkbox"
                name="criteria"
                value={c}
                checked={criteria.has(c)}
                onChange={(e) => {
                  const next = new Set(criteria);
                  if (e.currentTarget.checked) next.add(c);
                  else next.delete(c);
                  setCriteria(next);
                }}
              />
              {c.toLowerCase()}
            </label>
          ))}
        </fieldset>
        <div class="grid-auto">
          <label>
            Judge
            <select id="eval-judge" value={judge} onChange={(e) => setJudge(e.currentTarget.value as typeof judge)}>
              <option value="DETERMINISTIC">deterministic (measurements)</option>
              <option value="MODEL">the served model</option>
            </select>
          </label>
          <label>
            Concurrency
            <input id="eval-concurrency" type="number" min={1} max={16} step={1} value={concurrency} onInput={(e) => setConcurrency(e.currentTarget.value)} required />
          </label>
          <label>
            Max new tokens
            <input id="eval-max-new-tokens" type="number" min={1} max={1024} step={1} value={maxNewTokens} onInput={(e) => setMaxNewTokens(e.currentTarget.value)} required />
          </label>
          <label>
            Temperature
            <input id="eval-temperature" type="number" min={0} max={2} step={0.05} value={temperature} onInput={(e) => setTemperature(e.currentTarget.value)} required />
          </label>
          <label>
            Seed
            <input id="eval-seed" type="number" min={0} max={4294967295} step={1} value={seed} onInput={(e) => setSeed(e.currentTarget.value)} required />
          </label>
        </div>
        <button type="submit" aria-busy={busy ? 'true' : undefined} disabled={busy}>
          Start
        </button>
      </form>
      <ErrorNote error={error} />
    </article>
  );
}

/** The runs, and the form that starts one (`datasetId`: the dataset it starts with, from a dataset's page). */
export function Evaluations({ datasetId }: { datasetId?: string | undefined } = {}) {
  const [runs, setRuns] = useState<ResultOf<typeof BatchEvals>['batchEvals'] | null>(null);
  const [after, setAfter] = useState<Array<string | undefined>>([undefined]);
  const [picked, setPicked] = useState<string[]>([]);
  const active = runs?.nodes.some((r) => !FINAL.has(r.status)) ?? true;
  // Live progress: the list is read every 2 s while a run on it is queued or running, else every 10 s (runs started elsewhere).
  const error = usePoll(
    async (signal) => setRuns((await request(BatchEvals, { first: 20, after: after[after.length - 1] ?? null }, signal)).batchEvals),
    active ? 2000 : 10_000,
    [after.length],
  );
  const toggle = (id: string, on: boolean) => setPicked((p) => (on ? [...p.filter((x) => x !== id), id].slice(-2) : p.filter((x) => x !== id)));
  return (
    <section>
      <h1 tabIndex={-1}>Evaluations</h1>
      <StartForm onStarted={(id) => go('evals', id)} initialDatasetId={datasetId} />
      <h2>Runs</h2>
      <ErrorNote error={error} />
      <div class="toolbar">
        <a
          id="compare-link"
          role="button"
          class={picked.length === 2 ? '' : 'secondary outline'}
          aria-disabled={picked.length === 2 ? undefined : 'true'}
          href={picked.length === 2 ? href('evals', 'compare', picked[0]!, picked[1]!) : undefined}
        >
          Compare the two chosen runs
        </a>
        <span class="muted">{picked.length}/2 chosen</span>
      </div>
      <Scroll label={'Runs'}>
        <table id="runs-table" class="striped">
          <thead>
            <tr>
              <th scope="col">Compare</th>
              <th scope="col">Run</th>
              <th scope="col">Dataset</th>
              <th scope="col">Status</th>
              <th scope="col">Progress</th>
              <th scope="col">Criteria</th>
              <th scope="col">Started</th>
            </tr>
          </thead>
          <tbody>
            {runs?.nodes.map((r) => (
              <tr key={r.batchEvalId} data-run={r.batchEvalId}>
                <td>
                  <input type="checkbox" aria-label={`Compare ${r.batchEvalId}`} checked={picked.includes(r.batchEvalId)} onChange={(e) => toggle(r.batchEvalId, e.currentTarget.checked)} />
                </td>
                <td>
                  <a href={href('evals', r.batchEvalId)}>
                    <code>{r.batchEvalId}</code>
                  </a>
                </td>
                <td>
                  <a href={href('datasets', r.datasetId)}>
                    <code>{r.datasetId}</code>
                  </a>
                </td>
                <td>
                  <Badge value={r.status} />
                </td>
                <td>
                  <ProgressBar p={r.progress} label={`Progress of ${r.batchEvalId}`} />
                </td>
                <td>{r.criteria.map((c) => c.toLowerCase()).join(', ')}</td>
                <td>{when(r.createdAt)}</td>
              </tr>
            ))}
            {runs && runs.nodes.length === 0 && (
              <tr>
                <td colSpan={7}>No runs yet.</td>
              </tr>
            )}
          </tbody>
        </table>
      </Scroll>
      <nav class="pager" aria-label="Run pages">
        <button type="button" class="secondary outline small" disabled={after.length === 1} onClick={() => setAfter((a) => a.slice(0, -1))}>
          Previous page
        </button>
        <span>Page {after.length}</span>
        <button
          type="button"
          class="secondary outline small"
          disabled={!runs?.pageInfo.hasNextPage}
          onClick={() => runs?.pageInfo.endCursor && setAfter((a) => [...a, runs.pageInfo.endCursor!])}
        >
          Next page
        </button>
      </nav>
    </section>
  );
}

/** The pass rate with its 95% interval, in words and as a bar. */
function PassRate({ r }: { r: Run['result'] }) {
  if (r.passRate === null || r.passRate === undefined) return <span>–</span>;
  const lo = r.passRateCi95Lower ?? r.passRate;
  const hi = r.passRateCi95Upper ?? r.passRate;
  return (
    <span class="pass-rate">
      <strong class="rate">{pct(r.passRate)}</strong>{' '}
      <span class="ci-text">
        (95% interval {pct(lo)} – {pct(hi)})
      </span>
      <span class="ci" aria-hidden="true">
        <span class="ci-range" style={{ left: `${lo * 100}%`, width: `${Math.max((hi - lo) * 100, 0.5)}%` }} />
        <span class="ci-point" style={{ left: `${r.passRate * 100}%` }} />
      </span>
    </span>
  );
}

/** Latency bins over the answered records: about ten equal bins between the fastest and the slowest. */
function latencyBins(latencies: number[]): { categories: string[]; counts: number[] } {
  if (latencies.length === 0) return { categories: [], counts: [] };
  const min = Math.min(...latencies);
  const max = Math.max(...latencies);
  const span = Math.max(max - min, 1);
  const raw = span / 10;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const width = [1, 2, 5, 10].map((m) => m * mag).find((w) => w >= raw) ?? raw;
  const start = Math.floor(min / width) * width;
  const n = Math.max(1, Math.floor((max - start) / width) + 1);
  const counts = new Array<number>(n).fill(0);
  for (const l of latencies) counts[Math.min(n - 1, Math.floor((l - start) / width))]! += 1;
  const categories = counts.map((_, i) => `${start + i * width}–${start + (i + 1) * width}`);
  return { categories, counts };
}

function useRun(id: string) {
  const [run, setRun] = useState<Run | null>(null);
  const [dists, setDists] = useState<Distribution[]>([]);
  const [latencies, setLatencies] = useState<number[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [version, setVersion] = useState(0);

  // Everything about the run, read again whenever its progress subscription reports a change.
  useEffect(() => {
    const ctl = new AbortController();
    (async () => {
      const { batchEval } = await request(RunQuery, { id }, ctl.signal);
      const ds = await Promise.all(batchEval.criteria.map(async (c) => (await request(DistributionQuery, { id, criterion: c }, ctl.signal)).batchEval.distribution));
      if (ctl.signal.aborted) return;
      setRun(batchEval);
      setDists(ds);
      if (FINAL.has(batchEval.status) && batchEval.progress.total <= LATENCY_HISTOGRAM_MAX_RECORDS) {
        // Every record's latency, from the predictions artifact (the same file the download saves).
        const text = await fetchText(`/v1/batch-evals/${encodeURIComponent(id)}/artifacts/predictions.jsonl`, ctl.signal);
        const ls = text
          .split('\n')
          .filter(Boolean)
          .map((l) => (JSON.parse(l) as { latency_ms?: number | null }).latency_ms)
          .filter((v): v is number => typeof v === 'number');
        if (!ctl.signal.aborted) setLatencies(ls);
      }
    })().catch((err) => !ctl.signal.aborted && setError(err));
    return () => ctl.abort();
  }, [id, version]);

  // Live progress while it runs: the subscription's events move the bar, and each refreshes the figures.
  const running = run !== null && !FINAL.has(run.status);
  useEffect(() => {
    if (!running) return;
    const ctl = new AbortController();
    (async () => {
      let last = 0;
      for await (const { batchEvalProgress: p } of subscribe(Progress, { id }, ctl.signal)) {
        setRun((r) => (r ? { ...r, status: p.status, progress: p.progress } : r));
        // At most one full refresh a second, and always the last one.
        if (FINAL.has(p.status) || Date.now() - last > 1000) {
          last = Date.now();
          setVersion((v) => v + 1);
        }
      }
    })().catch((err) => !ctl.signal.aborted && setError(err));
    return () => ctl.abort();
  }, [id, running]);

  return { run, dists, latencies, error, refresh: () => setVersion((v) => v + 1) };
}

function RunSummary({ run }: { run: Run }) {
  const r = run.result;
  const params = (run.params ?? {}) as Record<string, unknown>;
  return (
    <Facts
      items={[
        ['Status', <Badge value={run.status} />],
        ['Progress', <ProgressBar p={run.progress} label="Records done" />],
        ['Pass rate', <PassRate r={r} />],
        ['Records done', `${r.totalItems} (${r.failedItems} not answered)`],
        ['Latency p50 / p95', `${ms(r.latencyP50Ms)} / ${ms(r.latencyP95Ms)}`],
        ['Tokens in / out', `${r.totalInputTokens} / ${r.totalOutputTokens}`],
        [
          'Mean scores',
          Object.entries((r.meanScores ?? {}) as Record<string, number | null>)
            .map(([c, v]) => `${c} ${num(v, 2)}`)
            .join(', ') || '–',
        ],
        ['Dataset', <a href={href('datasets', run.datasetId)}>{run.datasetId}</a>],
        ['Parameters', <code class="wrap">{Object.entries(params).map(([k, v]) => `${k}=${String(v)}`).join(' ')}</code>],
        ['Started / ended', `${when(run.startedAt)} / ${when(run.completedAt)}`],
        ...(run.error ? ([['Error', run.error]] as Array<[string, string]>) : []),
      ]}
    />
  );
}

function Histograms({ id, dists, color }: { id: string; dists: Distribution[]; color?: string }) {
  return (
    <>
      {dists.map((d) => (
        <BarChart
          key={d.criterion}
          id={`hist-${id}-${d.criterion.toLowerCase()}`}
          title={`${d.criterion.toLowerCase()} scores (mean ${num(d.mean, 2)})`}
          categories={d.buckets.map((b) => b.score)}
          counts={d.buckets.map((b) => b.count)}
          xLabel="score"
          {...(color ? { color } : {})}
        />
      ))}
    </>
  );
}

function FailuresTable({ id, total }: { id: string; total: number }) {
  const [items, setItems] = useState<Failure[]>([]);
  const [count, setCount] = useState<number | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [reason, setReason] = useState('');
  const [text, setText] = useState('');

  const load = async (after: string | null, replace: boolean) => {
    try {
      const { failures } = (await request(FailuresQuery, { id, first: 50, after })).batchEval;
      setItems((old) => (replace ? failures.nodes : [...old, ...failures.nodes]));
      setCount(failures.count);
      setCursor(failures.pageInfo.endCursor ?? null);
      setMore(failures.pageInfo.hasNextPage);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => {
    void load(null, true);
    // Reloaded as records finish (total changes).
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [id, total]);

  const reasons = [...new Set(items.map((i) => i.reason).filter(Boolean))] as string[];
  const needle = text.trim().toLowerCase();
  const shown = items.filter(
    (i) => (!reason || i.reason === reason) && (!needle || [i.recordId, i.message ?? '', i.response ?? ''].some((s) => s.toLowerCase().includes(needle))),
  );
  return (
    <>
      <h2>Failures {count === null ? '' : `(${count})`}</h2>
      <ErrorNote error={error} />
      <div class="toolbar grid-auto">
        <label>
          Reason
          <select id="failures-reason" value={reason} onChange={(e) => setReason(e.currentTarget.value)}>
            <option value="">all reasons</option>
            {reasons.map((r) => (
              <option key={r} value={r}>
                {r.toLowerCase().replace(/_/g, ' ')}
              </option>
            ))}
          </select>
        </label>
        <label>
          Search record id, message or answer
          <input id="failures-search" type="search" value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
      </div>
      <p class="muted" role="status">
        Showing {shown.length} of {items.length} loaded{count !== null && count > items.length ? ` (${count} in all)` : ''}.
      </p>
      <Scroll label={'Failures'}>
        <table id="failures-table" class="striped">
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Record id</th>
              <th scope="col">Reason</th>
              <th scope="col">Scores</th>
              <th scope="col">Latency</th>
              <th scope="col">Answer or message</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((i) => (
              <tr key={i.index} data-reason={i.reason ?? ''}>
                <td>{i.index}</td>
                <td>
                  <code>{i.recordId}</code>
                </td>
                <td>{i.reason?.toLowerCase().replace(/_/g, ' ') ?? '–'}</td>
                <td>{i.scores.map((s) => `${s.criterion.toLowerCase()} ${s.score ?? `– (${s.evaluatorError ?? 'unscored'})`}`).join(', ')}</td>
                <td>{ms(i.latencyMs)}</td>
                <td class="clip">{i.message ? <em>{i.message}. </em> : null}{i.response ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Scroll>
      {more && (
        <button type="button" class="secondary outline" onClick={() => void load(cursor, false)}>
          Load more failures
        </button>
      )}
    </>
  );
}

export function EvalRun({ id }: { id: string }) {
  const { run, dists, latencies, error, refresh } = useRun(id);
  const [actionError, setActionError] = useState<unknown>(null);
  const lat = useMemo(() => latencyBins(latencies ?? []), [latencies]);
  const download = async (name: string) => {
    setActionError(null);
    try {
      await downloadFile(`/v1/batch-evals/${encodeURIComponent(id)}/artifacts/${name}`, `${id}-${name}`);
    } catch (err) {
      setActionError(err);
    }
  };
  return (
    <section>
      <p>
        <a href={href('evals')}>← Evaluations</a>
      </p>
      <h1 tabIndex={-1}>
        Run <code>{id}</code>
      </h1>
      <ErrorNote error={error} />
      {!run && !error && <p aria-busy="true">Loading…</p>}
      {run && (
        <>
          <div id="run-summary">
            <RunSummary run={run} />
          </div>
          <div class="actions">
            {!FINAL.has(run.status) && (
              <button
                type="button"
                class="secondary"
                onClick={async () => {
                  try {
                    await request(Cancel, { id });
                    refresh();
                  } catch (err) {
                    setActionError(err);
                  }
                }}
              >
                Cancel the run
              </button>
            )}
            <button type="button" class="outline" onClick={() => void download('predictions.jsonl')}>
              Download predictions.jsonl
            </button>
            <button type="button" class="outline" onClick={() => void download('failures.jsonl')}>
              Download failures.jsonl
            </button>
          </div>
          <ErrorNote error={actionError} />
          <h2>Score histograms</h2>
          <div class="charts">
            <Histograms id="run" dists={dists} />
          </div>
          <h2>Latency</h2>
          <div class="charts">
            {latencies === null ? (
              <p class="muted">
                {!FINAL.has(run.status)
                  ? 'Drawn when the run ends.'
                  : run.progress.total > LATENCY_HISTOGRAM_MAX_RECORDS
                    ? `Drawn for runs of up to ${LATENCY_HISTOGRAM_MAX_RECORDS.toLocaleString('en-US')} records (it reads every record's latency); p50 and p95 are above.`
                    : 'Loading…'}
              </p>
            ) : (
              <BarChart id="hist-latency" title="Answer latency" categories={lat.categories} counts={lat.counts} xLabel="ms" color={COLORS[3]} />
            )}
          </div>
          <FailuresTable id={id} total={run.progress.completed + run.progress.failed} />
        </>
      )}
    </section>
  );
}

export function Compare({ a, b }: { a: string; b: string }) {
  const ra = useRun(a);
  const rb = useRun(b);
  const runs = [ra, rb];
  const criteria = [...new Set([...(ra.run?.criteria ?? []), ...(rb.run?.criteria ?? [])])];
  const rows: Array<[string, (r: Run) => preact.ComponentChildren]> = [
    ['Status', (r) => <Badge value={r.status} />],
    ['Dataset', (r) => <code>{r.datasetId}</code>],
    ['Records done', (r) => `${r.result.totalItems} of ${r.progress.total}`],
    ['Pass rate', (r) => <PassRate r={r.result} />],
    ['Latency p50', (r) => ms(r.result.latencyP50Ms)],
    ['Latency p95', (r) => ms(r.result.latencyP95Ms)],
    ['Tokens out', (r) => String(r.result.totalOutputTokens)],
    ...criteria.map((c): [string, (r: Run) => string] => [`Mean ${c.toLowerCase()}`, (r) => num(((r.result.meanScores ?? {}) as Record<string, number | null>)[c.toLowerCase()] ?? null, 2)]),
    ['Parameters', (r) => <code class="wrap">{Object.entries((r.params ?? {}) as Record<string, unknown>).map(([k, v]) => `${k}=${String(v)}`).join(' ')}</code>],
  ];
  return (
    <section>
      <p>
        <a href={href('evals')}>← Evaluations</a>
      </p>
      <h1 tabIndex={-1}>Two runs side by side</h1>
      <ErrorNote error={ra.error ?? rb.error} />
      {ra.run && rb.run ? (
        <>
          <Scroll label={'Comparison'}>
            <table id="compare-table" class="striped">
              <thead>
                <tr>
                  <th scope="col">Figure</th>
                  <th scope="col">
                    <a href={href('evals', a)}>
                      <code>{a}</code>
                    </a>
                  </th>
                  <th scope="col">
                    <a href={href('evals', b)}>
                      <code>{b}</code>
                    </a>
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map(([label, cell]) => (
                  <tr key={label}>
                    <th scope="row">{label}</th>
                    <td>{cell(ra.run!)}</td>
                    <td>{cell(rb.run!)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Scroll>
          <h2>Score histograms</h2>
          {criteria.map((c) => (
            <div class="side-by-side" key={c}>
              {runs.map((r, i) => {
                const d = r.dists.find((x) => x.criterion === c);
                const run = r.run!;
                return d ? (
                  <BarChart
                    key={run.batchEvalId}
                    id={`cmp-${i}-${c.toLowerCase()}`}
                    title={`${run.batchEvalId}: ${c.toLowerCase()} (mean ${num(d.mean, 2)})`}
                    categories={d.buckets.map((x) => x.score)}
                    counts={d.buckets.map((x) => x.count)}
                    xLabel="score"
                    color={COLORS[i]!}
                  />
                ) : (
                  <p key={run.batchEvalId} class="muted">
                    {run.batchEvalId} was not scored on {c.toLowerCase()}.
                  </p>
                );
              })}
            </div>
          ))}
        </>
      ) : (
        !ra.error && !rb.error && <p aria-busy="true">Loading…</p>
      )}
    </section>
  );
}
