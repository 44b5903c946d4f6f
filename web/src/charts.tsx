/**
 * Charts on uPlot: time series (live metrics) and bar histograms (scores,
 * latency). Each chart is a figure with a caption, its own legend, and the
 * numbers it draws as text (a table), so it reads without seeing the canvas.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { RefObject } from 'preact';
import uPlot from 'uplot';
import { Scroll } from './ui.tsx';
import 'uplot/dist/uPlot.min.css';

/** Colors with at least 3:1 contrast on white, told apart by more than hue where two share a chart (dashes). */
export const COLORS = ['#1f5fbf', '#b3261e', '#2e7d32', '#7b3fa0', '#8a5300'];

function useWidth(ref: RefObject<HTMLElement | null>): number {
  const [width, setWidth] = useState(0);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const update = () => setWidth(Math.floor(el.clientWidth));
    update();
    const ro = new ResizeObserver(update);
    ro.observe(el);
    return () => ro.disconnect();
  }, [ref]);
  return width;
}

interface Series {
  label: string;
  /** Dashed line: tells series apart without color. */
  dash?: boolean;
}

const axisStyle = { stroke: '#333', grid: { stroke: '#e3e3e3', width: 1 }, ticks: { stroke: '#ccc', width: 1 } };

/** The uPlot instance of a chart, made once its container has a width, resized with it, destroyed with it. */
function usePlot(
  container: RefObject<HTMLDivElement | null>,
  width: number,
  height: number,
  make: (w: number) => uPlot.Options,
  data: uPlot.AlignedData,
  key: string,
  redrawOn: unknown = null,
) {
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!container.current || width === 0) return;
    const u = new uPlot(make(width), data, container.current);
    plot.current = u;
    return () => {
      u.destroy();
      plot.current = null;
    };
    // Rebuilt when the series change (key); data and size are updated in place below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, width === 0]);
  useEffect(() => {
    plot.current?.setData(data);
  }, [data, redrawOn]);
  useEffect(() => {
    if (width > 0) plot.current?.setSize({ width, height });
  }, [width, height]);
}

/** A live time series: x is Unix seconds; one y array per series (null for gaps). */
export function TimeChart(props: {
  id: string;
  title: string;
  unit: string;
  series: Series[];
  data: [number[], ...(number | null)[][]];
  /** Visible x range in seconds, ending now (the window selector). */
  windowSeconds: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plotBox = useRef<HTMLDivElement>(null);
  const width = useWidth(box);
  const { data, series, windowSeconds } = props;
  const xs = data[0];
  // Read by the x scale's range at every redraw: the window ends at the newest sample.
  const range = useRef({ last: 0, windowSeconds });
  range.current = { last: xs.length ? xs[xs.length - 1]! : Date.now() / 1000, windowSeconds };
  const aligned = data as unknown as uPlot.AlignedData;
  usePlot(
    plotBox,
    width,
    200,
    (w) => ({
      width: w,
      height: 200,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: true, range: () => [range.current.last - range.current.windowSeconds, range.current.last] }, y: { range: (_u, min, max) => [0, Math.max(max * 1.1, min + 1, 1)] } },
      axes: [{ ...axisStyle }, { ...axisStyle, size: 60, label: props.unit, labelSize: 18 }],
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 2, ...(s.dash ? { dash: [6, 4] } : {}), points: { show: xs.length < 3 } }))],
    }),
    aligned,
    `${series.map((s) => s.label).join('|')}`,
    windowSeconds,
  );
  const latest = series.map((_, i) => {
    const ys = data[i + 1] ?? [];
    for (let k = ys.length - 1; k >= 0; k--) if (ys[k] !== null && ys[k] !== undefined) return ys[k] as number;
    return null;
  });
  return (
    <figure class="chart" id={props.id} data-points={xs.length} ref={box}>
      <figcaption>
        <strong>{props.title}</strong>
        <ul class="legend">
          {series.map((s, i) => (
            <li key={s.label}>
              <span class={`swatch${s.dash ? ' dashed' : ''}`} style={{ borderColor: COLORS[i % COLORS.length] }} aria-hidden="true" />
              {s.label}: <output>{latest[i] === null ? '–' : fmt(latest[i]!)}</output> {props.unit}
            </li>
          ))}
        </ul>
      </figcaption>
      <div
        ref={plotBox}
        role="img"
        aria-label={`${props.title}: ${xs.length} samples; latest ${series.map((s, i) => `${s.label} ${latest[i] === null ? 'none' : fmt(latest[i]!)}`).join(', ')}`}
      />
    </figure>
  );
}

const fmt = (v: number) => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

/** A histogram: one bar per category, its count drawn and written in a table beneath. */
export function BarChart(props: { id: string; title: string; categories: string[]; counts: number[]; xLabel: string; color?: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plotBox = useRef<HTMLDivElement>(null);
  const width = useWidth(box);
  const { categories, counts } = props;
  const data: uPlot.AlignedData = [categories.map((_, i) => i), counts];
  // Room for about one label per 70 px: every step-th category is named on narrow screens (the table names all).
  const step = useRef(1);
  step.current = width > 0 ? Math.max(1, Math.ceil((categories.length * 70) / width)) : 1;
  const total = counts.reduce((a, b) => a + b, 0);
  usePlot(
    plotBox,
    width,
    180,
    (w) => ({
      width: w,
      height: 180,
      legend: { show: false },
      cursor: { show: false },
      scales: {
        x: { time: false, range: () => [-0.5, categories.length - 0.5] },
        y: { range: (_u, _min, max) => [0, Math.max(1, Math.ceil(max * 1.15))] },
      },
      axes: [
        { ...axisStyle, values: (_u, splits) => splits.map((v) => (Number.isInteger(v) && v % step.current === 0 ? (categories[v] ?? '') : '')), splits: () => categories.map((_, i) => i), label: props.xLabel, labelSize: 18 },
        { ...axisStyle, size: 50, label: 'records', labelSize: 18, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] },
      ],
      series: [
        {},
        {
          label: props.title,
          fill: props.color ?? COLORS[0],
          stroke: props.color ?? COLORS[0],
          width: 0,
          paths: uPlot.paths.bars!({ size: [0.7, 80], align: 0 }),
          points: { show: false },
        },
      ],
    }),
    data,
    `${categories.join('|')}`,
  );
  return (
    <figure class="chart" id={props.id} data-counts={counts.join(',')}>
      <figcaption>
        <strong>{props.title}</strong> <small>({total} records)</small>
      </figcaption>
      <div ref={box}>
        <div ref={plotBox} role="img" aria-label={`${props.title}: ${categories.map((c, i) => `${c}: ${counts[i]}`).join(', ')}`} />
      </div>
      <Scroll label={`${props.title}: counts`}>
        <table class="counts">
          <tbody>
            <tr>
              <th scope="row">{props.xLabel}</th>
              {categories.map((c) => (
                <td key={c}>{c}</td>
              ))}
            </tr>
            <tr>
              <th scope="row">records</th>
              {counts.map((n, i) => (
                <td key={categories[i]} data-category={categories[i]}>
                  {n}
                </td>
              ))}
            </tr>
          </tbody>
        </table>
      </Scroll>
    </figure>
  );
}
