import '@picocss/pico/css/pico.min.css';
import './styles.css';
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { apiKey, forgetKey, onUnauthorized } from './api.ts';
import { KeyForm } from './pages/key.tsx';
import { Playground } from './pages/playground.tsx';
import { ModelHealth } from './pages/model.tsx';
import { LiveMetrics } from './pages/metrics.tsx';
import { DatasetPage, Datasets } from './pages/datasets.tsx';
import { Compare, EvalRun, Evaluations } from './pages/evals.tsx';
import { Rag } from './pages/rag.tsx';
import { href, useHashRoute } from './ui.tsx';

const PAGES = [
  ['playground', 'Playground'],
  ['model', 'Model and health'],
  ['metrics', 'Live metrics'],
  ['datasets', 'Datasets'],
  ['evals', 'Evaluations'],
  ['rag', 'RAG'],
] as const;

function Page({ route }: { route: string[] }) {
  const [section, a, b, c] = route;
  switch (section) {
    case 'model':
      return <ModelHealth />;
    case 'metrics':
      return <LiveMetrics />;
    case 'datasets':
      return a ? <DatasetPage id={a} /> : <Datasets />;
    case 'evals':
      if (a === 'compare' && b && c) return <Compare a={b} b={c} />;
      if (a === 'new') return <Evaluations datasetId={b} />;
      return a ? <EvalRun id={a} /> : <Evaluations />;
    case 'rag':
      return <Rag />;
    case 'playground':
      return <Playground />;
    default:
      return (
        <section>
          <h1 tabIndex={-1}>Not found</h1>
          <p>
            No page here. <a href={href('playground')}>Go to the playground</a>.
          </p>
        </section>
      );
  }
}

function App() {
  const [hasKey, setHasKey] = useState(() => apiKey() !== null);
  const [notice, setNotice] = useState<string | null>(null);
  const route = useHashRoute();
  const main = useRef<HTMLElement>(null);

  useEffect(() => {
    onUnauthorized((message) => {
      setNotice(message);
      setHasKey(false);
    });
  }, []);

  // A new page: focus its heading, so keyboard and screen-reader users start there.
  useEffect(() => {
    if (!hasKey) return;
    const t = setTimeout(() => main.current?.querySelector<HTMLElement>('h1')?.focus({ preventScroll: true }), 0);
    document.title = `${PAGES.find(([id]) => id === route[0])?.[1] ?? 'Console'} · Inference server`;
    return () => clearTimeout(t);
  }, [route.join('/'), hasKey]);

  return (
    <>
      <a class="skip" href="#main" onClick={(e) => {
        e.preventDefault();
        main.current?.focus();
      }}>
        Skip to content
      </a>
      <header class="container-fluid topbar">
        <nav aria-label="Console">
          <ul>
            <li>
              <strong>Inference server</strong>
            </li>
          </ul>
          {hasKey && (
            <ul class="pages">
              {PAGES.map(([id, label]) => (
                <li key={id}>
                  <a href={href(id)} aria-current={route[0] === id ? 'page' : undefined}>
                    {label}
                  </a>
                </li>
              ))}
              <li>
                <a href="/graphql">GraphiQL</a>
              </li>
              <li>
                <button
                  type="button"
                  class="secondary outline small"
                  onClick={() => {
                    forgetKey();
                    setNotice('The key was forgotten.');
                    setHasKey(false);
                  }}
                >
                  Forget key
                </button>
              </li>
            </ul>
          )}
        </nav>
      </header>
      <main id="main" class="container" ref={main} tabIndex={-1}>
        {hasKey ? (
          <Page route={route} />
        ) : (
          <KeyForm
            notice={notice}
            onSaved={() => {
              setNotice(null);
              setHasKey(true);
            }}
          />
        )}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
