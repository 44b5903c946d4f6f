/** Small shared pieces: the hash router, error notes, formatting, polling. */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.ts';

/** The route is the URL's hash (#/evals/be_1): pages only, never the key. */
export function useHashRoute(): string[] {
  const read = () => (location.hash.replace(/^#\/?/, '') || 'playground').split('/').map(decodeURIComponent);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const onChange = () => setRoute(read());
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

export const href = (...parts: string[]) => `#/${parts.map(encodeURIComponent).join('/')}`;

export function go(...parts: string[]): void {
  location.hash = href(...parts);
}

export function errorText(err: unknown): string {
  if (err instanceof ApiError) return `${err.message} (${err.code})`;
  if (err instanceof Error) return err.message;
  return String(err);
}

/** An error, announced to screen readers. */
export function ErrorNote({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null;
  return (
    <p class="error" role="alert">
      {errorText(error)}
    </p>
  );
}

/** Calls `fn` now and every `ms` while mounted (and while `active`); a failed call is kept as the error. */
export function usePoll(fn: (signal: AbortSignal) => Promise<void>, ms: number, deps: unknown[], active = true): unknown {
  const [error, setError] = useState<unknown>(null);
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => {
    if (!active) return;
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      try {
        await latest.current(ctl.signal);
        setError(null);
      } catch (err) {
        if (!ctl.signal.aborted) setError(err);
      }
      if (!ctl.signal.aborted) timer = setTimeout(tick, ms);
    };
    void tick();
    return () => {
      ctl.abort();
      clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, active, ms]);
  return error;
}

/** Loads once per change of deps: [value, error, reload]. */
export function useLoad<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[]): [T | undefined, unknown, () => void] {
  const [value, setValue] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [n, setN] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    setError(null);
    fn(ctl.signal).then(
      (v) => !ctl.signal.aborted && setValue(v),
      (err) => !ctl.signal.aborted && setError(err),
    );
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, n]);
  return [value, error, () => setN((x) => x + 1)];
}

export const pct = (v: number | null | undefined, digits = 1) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(digits)}%`);
export const num = (v: number | null | undefined, digits = 1) => (v === null || v === undefined ? '–' : Number.isInteger(v) ? String(v) : v.toFixed(digits));
export const ms = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ms`);
export const when = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : '–');

/** A two-column list of facts (dt/dd). */
export function Facts({ items }: { items: Array<[string, ComponentChildren]> }) {
  return (
    <dl class="facts">
      {items.map(([k, v]) => (
        <div key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

/** A status word with a color that is not the only cue (the word itself). */
export function Badge({ value }: { value: string | null | undefined }) {
  const v = (value ?? 'unknown').toLowerCase();
  const tone = /^(ok|ready|completed|succeeded)$/.test(v) ? 'good' : /^(failed|unavailable|degraded|cancelled)/.test(v) ? 'bad' : 'neutral';
  return <span class={`badge ${tone}`}>{v.replace(/_/g, ' ')}</span>;
}

/** A region that scrolls sideways on narrow screens (wide tables); focusable, so the keyboard can scroll it. */
export function Scroll({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-scroll" tabIndex={0} role="region" aria-label={label}>
      {children}
    </div>
  );
}
