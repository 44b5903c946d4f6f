import { useState } from 'preact/hooks';
import { request } from '../api.ts';
import { TimeChart } from '../charts.tsx';
import { graphql, type ResultOf } from '../graphql.ts';
import { ErrorNote, usePoll } from '../ui.tsx';

const MetricsQuery = graphql(`
  query LiveMetrics {
    metrics {
      uptimeS
      requests {
        total
      }
      inference {
        requests
        completionTokens
        queueDepth
        runningBatch
        timeToFirstTokenMs {
          p50
          p95
        }
        interTokenLatencyMs {
          p50
          p95
        }
      }
    }
  }
`);

type Snapshot = ResultOf<typeof MetricsQuery>['metrics'];

/** One sample: the time (Unix seconds) and the figures derived from two snapshots. */
interface Sample {
  t: number;
  tokensPerS: number | null;
  httpPerS: number | null;
  generationsPerS: number | null;
  ttftP50: number | null;
  ttftP95: number | null;
  itlP50: number | null;
  itlP95: number | null;
  queueDepth: number;
  runningBatch: number;
}

const INTERVAL_MS = 2000;
/** Kept while the console is open: an hour at one sample every 2 s. */
const MAX_SAMPLES = 1800;
const WINDOWS = [
  [60, '1 minute'],
  [300, '5 minutes'],
  [900, '15 minutes'],
  [3600, '1 hour'],
] as const;

// Kept across visits to the page (not across reloads): leaving the page pauses the sampling.
const history: Sample[] = [];
let previous: { at: number; m: Snapshot } | null = null;

function addSample(m: Snapshot): void {
  const at = Date.now() / 1000;
  const prev = previous;
  previous = { at, m };
  // Counters go back only if the server restarted: no rate for that gap.
  const dt = prev ? at - prev.at : 0;
  const rate = (now: number, before: number | undefined) => (prev && dt > 0 && before !== undefined && now >= before ? (now - before) / dt : null);
  history.push({
    t: at,
    tokensPerS: rate(m.inference.completionTokens, prev?.m.inference.completionTokens),
    httpPerS: rate(m.requests.total, prev?.m.requests.total),
    generationsPerS: rate(m.inference.requests, prev?.m.inference.requests),
    ttftP50: m.inference.timeToFirstTokenMs.p50 ?? null,
    ttftP95: m.inference.timeToFirstTokenMs.p95 ?? null,
    itlP50: m.inference.interTokenLatencyMs.p50 ?? null,
    itlP95: m.inference.interTokenLatencyMs.p95 ?? null,
    queueDepth: m.inference.queueDepth,
    runningBatch: m.inference.runningBatch,
  });
  if (history.length > MAX_SAMPLES) history.splice(0, history.length - MAX_SAMPLES);
}

export function LiveMetrics() {
  const [windowSeconds, setWindowSeconds] = useState<number>(300);
  const [, setVersion] = useState(0);
  const error = usePoll(
    async (signal) => {
      // A gap longer than a few intervals (the page was left) starts the rates afresh.
      if (previous && Date.now() / 1000 - previous.at > (INTERVAL_MS / 1000) * 5) previous = null;
      const { metrics } = await request(MetricsQuery, {}, signal);
      addSample(metrics);
      setVersion((v) => v + 1);
    },
    INTERVAL_MS,
    [],
  );
  const now = history.length ? history[history.length - 1]!.t : Date.now() / 1000;
  const shown = history.filter((s) => s.t >= now - windowSeconds);
  const xs = shown.map((s) => s.t);
  const col = (k: keyof Sample) => shown.map((s) => s[k] as number | null);

  return (
    <section>
      <h1 tabIndex={-1}>Live metrics</h1>
      <div class="toolbar">
        <label>
          Time window
          <select id="metrics-window" value={windowSeconds} onChange={(e) => setWindowSeconds(Number(e.currentTarget.value))}>
            {WINDOWS.map(([s, label]) => (
              <option key={s} value={s}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <p class="muted">
          Sampled every 2 s from the GraphQL <code>metrics</code> query while this page is open: <output id="metrics-samples">{history.length}</output> samples.
          Percentiles are over the server's most recent requests.
        </p>
      </div>
      <ErrorNote error={error} />
      <div class="charts">
        <TimeChart id="chart-tokens" title="Generated tokens per second" unit="tokens/s" series={[{ label: 'tokens/s' }]} data={[xs, col('tokensPerS')]} windowSeconds={windowSeconds} />
        <TimeChart
          id="chart-requests"
          title="Requests per second"
          unit="req/s"
          series={[{ label: 'HTTP requests (this page included)' }, { label: 'generations', dash: true }]}
          data={[xs, col('httpPerS'), col('generationsPerS')]}
          windowSeconds={windowSeconds}
        />
        <TimeChart
          id="chart-ttft"
          title="Time to first token"
          unit="ms"
          series={[{ label: 'p50' }, { label: 'p95', dash: true }]}
          data={[xs, col('ttftP50'), col('ttftP95')]}
          windowSeconds={windowSeconds}
        />
        <TimeChart
          id="chart-itl"
          title="Inter-token latency"
          unit="ms"
          series={[{ label: 'p50' }, { label: 'p95', dash: true }]}
          data={[xs, col('itlP50'), col('itlP95')]}
          windowSeconds={windowSeconds}
        />
        <TimeChart
          id="chart-batch"
          title="Queue depth and running batch"
          unit="sequences"
          series={[{ label: 'queue depth' }, { label: 'running batch', dash: true }]}
          data={[xs, col('queueDepth'), col('runningBatch')]}
          windowSeconds={windowSeconds}
        />
      </div>
    </section>
  );
}
