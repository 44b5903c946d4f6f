import { useState } from 'preact/hooks';
import { request } from '../api.ts';
import { graphql, type ResultOf } from '../graphql.ts';
import { Badge, ErrorNote, Facts, ms, num, usePoll } from '../ui.tsx';

const ModelHealthQuery = graphql(`
  query ModelHealth {
    health {
      status
      reason
      version
      device
      uptimeS
      modelLoaded
      queueDepth
      runningBatch
      redis
      database {
        kind
        state
        latencyMs
        reason
      }
      embedding {
        state
        model
        source
        dimensions
        maxTokens
        loadSeconds
        queueDepth
        reason
      }
    }
    model {
      name
      state
      source
      architecture
      graph
      contextWindow
      layers
      hiddenSize
      attentionHeads
      kvHeads
      vocabSize
      loadSeconds
      quantization {
        mode
        bits
        blockSize
        method
        scaleMethod
        lmHead
        embedding
      }
    }
  }
`);

type Data = ResultOf<typeof ModelHealthQuery>;

const seconds = (s: number | null | undefined) => (s === null || s === undefined ? '–' : `${s.toFixed(s < 10 ? 2 : 1)} s`);

function uptime(s: number): string {
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${Math.floor(s % 60)} s` : `${s.toFixed(0)} s`;
}

export function ModelHealth() {
  const [data, setData] = useState<Data | null>(null);
  const error = usePoll(async (signal) => setData(await request(ModelHealthQuery, {}, signal)), 5000, []);
  if (!data) {
    return (
      <section>
        <h1 tabIndex={-1}>Model and health</h1>
        <ErrorNote error={error} />
        {!error && <p aria-busy="true">Loading…</p>}
      </section>
    );
  }
  const { health: h, model: m } = data;
  const q = m.quantization;
  return (
    <section>
      <h1 tabIndex={-1}>Model and health</h1>
      <ErrorNote error={error} />
      <p>
        Server <Badge value={h.status} /> {h.reason && <span>— {h.reason}</span>} <small>(refreshed every 5 s)</small>
      </p>
      <div class="grid-cards">
        <article id="model-facts">
          <header>
            <h2>Model</h2>
          </header>
          <Facts
            items={[
              ['Name', <strong>{m.name}</strong>],
              ['State', <Badge value={m.state} />],
              ['Source', m.source ? <code class="wrap">{m.source}</code> : '–'],
              ['Context window', m.contextWindow === null ? '–' : `${m.contextWindow} tokens`],
              ['Quantization', q ? `${q.mode.toLowerCase()} (${q.bits}-bit, blocks of ${q.blockSize}, ${q.method}, ${q.scaleMethod}${q.lmHead ? ', LM head too' : ''})` : 'none (fp32)'],
              ['Load time', seconds(m.loadSeconds)],
              ['Architecture', m.architecture ?? '–'],
              ['Graph', m.graph?.toLowerCase() ?? '–'],
              ['Layers', num(m.layers)],
              ['Hidden size', num(m.hiddenSize)],
              ['Heads (query / key-value)', m.attentionHeads === null ? '–' : `${m.attentionHeads} / ${m.kvHeads ?? m.attentionHeads}`],
              ['Vocabulary', num(m.vocabSize)],
            ]}
          />
        </article>
        <article id="serving-facts">
          <header>
            <h2>Serving</h2>
          </header>
          <Facts
            items={[
              ['Queue depth', <output>{h.queueDepth}</output>],
              ['Running batch', <output>{h.runningBatch}</output>],
              ['Device', h.device],
              ['Version', h.version],
              ['Uptime', uptime(h.uptimeS)],
            ]}
          />
        </article>
        <article id="dependency-facts">
          <header>
            <h2>Database and Redis</h2>
          </header>
          <Facts
            items={[
              ['Database', h.database.kind === 'POSTGRES' ? 'PostgreSQL' : 'SQLite'],
              ['Database status', <Badge value={h.database.state} />],
              ['Database read', h.database.latencyMs === null ? (h.database.reason ?? '–') : ms(h.database.latencyMs)],
              ['Redis', h.redis ? <Badge value={h.redis} /> : 'not configured (limits and cache in process)'],
            ]}
          />
        </article>
        <article id="embedding-facts">
          <header>
            <h2>Embedding model</h2>
          </header>
          <Facts
            items={[
              ['Model', h.embedding.model ?? '–'],
              ['State', <Badge value={h.embedding.state} />],
              ['Source', h.embedding.source?.toLowerCase() ?? '–'],
              ['Dimensions', num(h.embedding.dimensions)],
              ['Max tokens', num(h.embedding.maxTokens)],
              ['Load time', seconds(h.embedding.loadSeconds)],
              ['Queue depth', String(h.embedding.queueDepth)],
              ...(h.embedding.reason ? ([['Reason', h.embedding.reason]] as Array<[string, string]>) : []),
            ]}
          />
        </article>
      </div>
    </section>
  );
}
