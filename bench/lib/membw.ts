/**
 * A STREAM-style memory-bandwidth benchmark in Node: copy (`a = b`), triad
 * (`a = b + s*c`) and a read-only sum (`sum(a)`) over arrays far larger than
 * the caches, split across 1..N threads (worker_threads over one shared
 * WebAssembly memory, which is a SharedArrayBuffer), best of several passes,
 * in GB/s (1e9 bytes/s).
 *
 * The kernels are a small WebAssembly module with 128-bit SIMD loads and
 * stores, written out byte by byte below (plain JavaScript loops are bound
 * by the core, not by memory: a scalar Float64Array sum moves ~8 bytes a
 * cycle at best). Bytes are counted as STREAM counts them: copy 16 a
 * double, triad 24, read 8 (write-allocate traffic is not counted).
 *
 * The decode step of a model at batch 1 reads every weight once, so `read`
 * is the figure to hold a step's effective weight bandwidth against.
 */
import { Worker } from 'node:worker_threads';

export type Kernel = 'copy' | 'triad' | 'read';
export const KERNELS: readonly Kernel[] = ['copy', 'triad', 'read'];

export interface MemBwOptions {
  /** MB (1e6 bytes) per array; three arrays are allocated (default 256). */
  arrayMb?: number;
  /** Thread counts to measure (default [1, 2]). */
  threads?: number[];
  /** Timed passes per kernel and thread count; the best is reported (default 8). */
  passes?: number;
}

export interface MemBwResult {
  array_mb: number;
  passes: number;
  /** Per thread count: best GB/s of each kernel, and the median for a feel of the spread. */
  results: Array<{ threads: number } & Record<Kernel, { best_gb_s: number; median_gb_s: number }>>;
}

const BYTES_PER_ELEMENT: Record<Kernel, number> = { copy: 16, triad: 24, read: 8 };

// ------------------------------------------------------------ the wasm module

const u = (n: number): number[] => {
  // unsigned LEB128
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
};
const vec = (items: number[][]): number[] => [...u(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...u(body.length), ...body];
const str = (s: string): number[] => [...u(s.length), ...[...s].map((ch) => ch.charCodeAt(0))];

const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;
const get = (i: number): number[] => [0x20, ...u(i)];
const set = (i: number): number[] => [0x21, ...u(i)];
const simd = (op: number, ...imm: number[]): number[] => [0xfd, ...u(op), ...imm];
const load = (offset: number): number[] => simd(0x00, 4, ...u(offset)); // v128.load align=16
const store = (offset: number): number[] => simd(0x0b, 4, ...u(offset)); // v128.store align=16
const I32_ADD = 0x6a;
const I32_LT_U = 0x49;
const I64X2_ADD = 0xce;
const F64X2_ADD = 0xf0;
const F64X2_MUL = 0xf2;
const F64X2_SPLAT = 0x14;
const I64X2_EXTRACT = 0x1d;
const F64_CONVERT_I64_S = 0xb9;
const I64_ADD = 0x7c;
const i32 = (v: number): number[] => [0x41, ...sleb(v)];
function sleb(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}
/** `loop { body; p += step...; br_if p < end }`: locals p (and friends) advance by `step`. */
const loop = (body: number[], advance: number[], end: number[]): number[] => [0x03, 0x40, ...body, ...advance, ...end, 0x0d, 0x00, 0x0b];
const bump = (local: number, step: number): number[] => [...get(local), ...i32(step), I32_ADD, ...set(local)];

/** read(p, bytes) -> f64: sum of the memory's 64-bit words (integer adds: one-cycle latency), 128 bytes a turn. */
function readBody(): number[] {
  // params: 0 p, 1 bytes; locals: 2 end (i32), 3..6 acc (v128)
  const acc = [3, 4, 5, 6];
  const body: number[] = [];
  for (let j = 0; j < 8; j++) body.push(...get(acc[j % 4]!), ...get(0), ...load(16 * j), ...simd(I64X2_ADD), ...set(acc[j % 4]!));
  const sum = [
    ...get(3), ...get(4), ...simd(I64X2_ADD), ...get(5), ...simd(I64X2_ADD), ...get(6), ...simd(I64X2_ADD), ...set(3),
    ...get(3), ...simd(I64X2_EXTRACT, 0), ...get(3), ...simd(I64X2_EXTRACT, 1), I64_ADD, F64_CONVERT_I64_S,
  ];
  const code = [...get(0), ...get(1), I32_ADD, ...set(2), ...loop(body, bump(0, 128), [...get(0), ...get(2), I32_LT_U]), ...sum, 0x0b];
  return [...u(2), 1, I32, 4, V128, ...code]; // locals: 1 i32, 4 v128
}

/** copy(dst, src, bytes): 64 bytes a turn. */
function copyBody(): number[] {
  // params 0 dst, 1 src, 2 bytes; local 3 end
  const body: number[] = [];
  for (let j = 0; j < 4; j++) body.push(...get(0), ...get(1), ...load(16 * j), ...store(16 * j));
  const code = [...get(1), ...get(2), I32_ADD, ...set(3), ...loop(body, [...bump(0, 64), ...bump(1, 64)], [...get(1), ...get(3), I32_LT_U]), 0x0b];
  return [...u(1), 1, I32, ...code];
}

/** triad(a, b, c, bytes, s): a = b + s*c, 64 bytes a turn. */
function triadBody(): number[] {
  // params 0 a, 1 b, 2 c, 3 bytes, 4 s (f64); locals 5 end (i32), 6 splat s (v128)
  const body: number[] = [];
  for (let j = 0; j < 4; j++) {
    body.push(...get(0), ...get(1), ...load(16 * j), ...get(2), ...load(16 * j), ...get(6), ...simd(F64X2_MUL), ...simd(F64X2_ADD), ...store(16 * j));
  }
  const code = [
    ...get(1), ...get(3), I32_ADD, ...set(5), ...get(4), ...simd(F64X2_SPLAT), ...set(6),
    ...loop(body, [...bump(0, 64), ...bump(1, 64), ...bump(2, 64)], [...get(1), ...get(5), I32_LT_U]), 0x0b,
  ];
  return [...u(2), 1, I32, 1, V128, ...code];
}

/** The module's bytes: imports env.mem (shared, `pages` 64 KiB pages), exports read, copy, triad. */
export function kernelModuleBytes(pages: number): Uint8Array<ArrayBuffer> {
  const types = vec([
    [0x60, ...vec([[I32], [I32]]), ...vec([[F64]])], // read
    [0x60, ...vec([[I32], [I32], [I32]]), 0x00], // copy
    [0x60, ...vec([[I32], [I32], [I32], [I32], [F64]]), 0x00], // triad
  ]);
  const imports = vec([[...str('env'), ...str('mem'), 0x02, 0x03, ...u(pages), ...u(pages)]]);
  const funcs = vec([[0], [1], [2]]);
  const exports = vec([
    [...str('read'), 0x00, 0],
    [...str('copy'), 0x00, 1],
    [...str('triad'), 0x00, 2],
  ]);
  const bodies = [readBody(), copyBody(), triadBody()].map((b) => [...u(b.length), ...b]);
  const code = vec(bodies);
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, types), ...section(2, imports), ...section(3, funcs), ...section(7, exports), ...section(10, code),
  ]);
}

// ------------------------------------------------------------ the workers

/** Worker: instantiates the kernels over the shared memory; per message, meets the others at a spin barrier, runs its slice, stamps the times. */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { module, memory, control, stamps, index, threads } = workerData;
const k = new WebAssembly.Instance(module, { env: { mem: memory } }).exports;
const ctl = new Int32Array(control);
const t = new Float64Array(stamps);
let sink = 0;
parentPort.on('message', ({ kernel, a, b, c, bytes }) => {
  Atomics.add(ctl, 0, 1);
  while (Atomics.load(ctl, 0) < threads) {}
  t[2 * index] = performance.timeOrigin + performance.now();
  if (kernel === 'read') sink += k.read(a, bytes);
  else if (kernel === 'copy') k.copy(a, b, bytes);
  else k.triad(a, b, c, bytes, 3.0);
  t[2 * index + 1] = performance.timeOrigin + performance.now();
  parentPort.postMessage(sink);
});
`;

const MB = 1e6;

/**
 * Shared arrays and a pool of worker threads, kept between passes so that a
 * pass can be interleaved with other measurements (e.g. a model's decode
 * steps) in one run.
 */
export class MemBwMeter {
  private readonly ctl: Int32Array;
  private readonly t: Float64Array;

  private constructor(
    readonly arrayBytes: number,
    readonly threads: number,
    private readonly workers: Worker[],
    control: SharedArrayBuffer,
    stamps: SharedArrayBuffer,
  ) {
    this.ctl = new Int32Array(control);
    this.t = new Float64Array(stamps);
  }

  /** Three arrays of about `arrayMb` MB each (rounded to 128 bytes a thread), `threads` workers. */
  static async create(arrayMb: number, threads: number): Promise<MemBwMeter> {
    const grain = 128 * threads;
    const arrayBytes = Math.ceil((arrayMb * MB) / grain) * grain;
    const pages = Math.ceil((3 * arrayBytes) / 65536);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const module = await WebAssembly.compile(kernelModuleBytes(pages));
    // Touch every page (and give the arrays values) before timing.
    new Float64Array(memory.buffer, 0, (3 * arrayBytes) / 8).fill(1);
    const control = new SharedArrayBuffer(4);
    const stamps = new SharedArrayBuffer(16 * threads);
    const workers = Array.from(
      { length: threads },
      (_, index) => new Worker(WORKER, { eval: true, workerData: { module, memory, control, stamps, index, threads } }),
    );
    return new MemBwMeter(arrayBytes, threads, workers, control, stamps);
  }

  /** One pass of `kernel` over the arrays, all threads at once; returns its wall time (first start to last end) and GB/s. */
  async pass(kernel: Kernel): Promise<{ ms: number; gbS: number }> {
    Atomics.store(this.ctl, 0, 0);
    const slice = this.arrayBytes / this.threads;
    const base = [0, this.arrayBytes, 2 * this.arrayBytes];
    await Promise.all(
      this.workers.map(
        (w, i) =>
          new Promise<void>((resolve, reject) => {
            const onError = (err: Error): void => reject(err);
            w.once('error', onError);
            w.once('message', () => {
              w.off('error', onError);
              resolve();
            });
            // read: sum of a; copy: a = b; triad: a = b + s*c.
            w.postMessage({ kernel, a: base[0]! + i * slice, b: base[1]! + i * slice, c: base[2]! + i * slice, bytes: slice });
          }),
      ),
    );
    let start = Infinity;
    let end = -Infinity;
    for (let i = 0; i < this.threads; i++) {
      start = Math.min(start, this.t[2 * i]!);
      end = Math.max(end, this.t[2 * i + 1]!);
    }
    const bytes = (this.arrayBytes / 8) * BYTES_PER_ELEMENT[kernel];
    return { ms: end - start, gbS: bytes / ((end - start) / 1000) / 1e9 };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Runs the benchmark; allocates 3 x arrayMb of shared memory per thread count, one at a time. */
export async function measureMemoryBandwidth(opts: MemBwOptions = {}): Promise<MemBwResult> {
  const arrayMb = opts.arrayMb ?? 256;
  const threadCounts = opts.threads ?? [1, 2];
  const passes = opts.passes ?? 8;
  const results: MemBwResult['results'] = [];
  let arrayBytes = 0;
  for (const threads of threadCounts) {
    const meter = await MemBwMeter.create(arrayMb, threads);
    arrayBytes = meter.arrayBytes;
    try {
      const row = { threads } as MemBwResult['results'][number];
      for (const kernel of KERNELS) {
        await meter.pass(kernel); // warm-up
        const rates: number[] = [];
        for (let pass = 0; pass < passes; pass++) rates.push((await meter.pass(kernel)).gbS);
        rates.sort((x, y) => y - x);
        row[kernel] = { best_gb_s: round1(rates[0]!), median_gb_s: round1(rates[Math.floor(rates.length / 2)]!) };
      }
      results.push(row);
    } finally {
      await meter.close();
    }
  }
  return { array_mb: Math.round(arrayBytes / MB), passes, results };
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

/** One line per thread count, e.g. `2 threads: copy 30.1, triad 31.0, read 39.2 GB/s (best of 8; medians 29.0/30.2/38.1)`. */
export function formatMemBw(r: MemBwResult): string {
  return r.results
    .map(
      (row) =>
        `${row.threads} thread${row.threads === 1 ? '' : 's'}: ` +
        KERNELS.map((k) => `${k} ${row[k].best_gb_s}`).join(', ') +
        ` GB/s (best of ${r.passes} over ${r.array_mb} MB arrays; medians ${KERNELS.map((k) => row[k].median_gb_s).join('/')})`,
    )
    .join('\n');
}
