/**
 * A strict parser of the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/): it throws
 * on anything the format does not allow, rather than skipping it. The npm
 * parsers at hand skip or accept malformed lines and never check histograms.
 *
 * Checked: every line is a HELP, TYPE, comment, blank or sample line; metric
 * and label names match their grammars; label values use only the \\ \" \n
 * escapes; HELP text only \\ and \n; values are Go floats (NaN, +Inf, -Inf
 * included); timestamps are integers; at most one HELP and one TYPE per
 * family, both before its samples; a family's lines are one group; no label
 * name twice in a sample, no series twice; counters are non-negative;
 * histograms have ascending `le` buckets with cumulative counts, a `+Inf`
 * bucket equal to `_count`, and a `_sum`; summaries' quantiles are in [0, 1].
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestamp?: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help?: string;
  samples: Sample[];
}

export class ExpositionError extends Error {
  constructor(lineNo: number, line: string, why: string) {
    super(`line ${lineNo}: ${why}: ${JSON.stringify(line)}`);
    this.name = 'ExpositionError';
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
// Go's strconv.ParseFloat, which Prometheus uses: decimal (`1`, `1.`, `.5`, `1e-3`) or hex (`0x1p-2`) floats.
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const HEX = /^[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+$/;
const INT = /^-?\d+$/;

export function parseFloatStrict(s: string): number | undefined {
  const lower = s.toLowerCase();
  if (lower === 'nan') return NaN;
  if (['+inf', 'inf', '+infinity', 'infinity'].includes(lower)) return Infinity;
  if (lower === '-inf' || lower === '-infinity') return -Infinity;
  if (DECIMAL.test(s)) return Number(s);
  if (HEX.test(s)) return hexFloat(s);
  return undefined;
}

function hexFloat(s: string): number {
  const m = /^([+-]?)0[xX]([0-9a-fA-F]*)\.?([0-9a-fA-F]*)[pP]([+-]?\d+)$/.exec(s)!;
  const [, sign, int = '', frac = '', exp = '0'] = m;
  const mantissa = parseInt(int || '0', 16) + (frac ? parseInt(frac, 16) / 16 ** frac.length : 0);
  return (sign === '-' ? -1 : 1) * mantissa * 2 ** Number(exp);
}

function unescapeHelp(s: string, fail: (why: string) => never): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = s[++i];
    if (n === '\\') out += '\\';
    else if (n === 'n') out += '\n';
    else fail(`invalid escape \\${n ?? ''} in HELP`);
  }
  return out;
}

/** Parses `name{labels} value [timestamp]`. */
function parseSample(line: string, fail: (why: string) => never): Sample {
  let i = 0;
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  if (!nameMatch) fail('sample does not start with a metric name');
  const name = nameMatch[0];
  i = name.length;
  const labels: Record<string, string> = {};
  const skipBlanks = () => {
    while (line[i] === ' ' || line[i] === '\t') i++;
  };
  skipBlanks();
  // Blanks separate a bare name from its value; after `}` they are optional (as in Prometheus's parser).
  let separated = i > name.length;
  if (line[i] === '{') {
    i++;
    skipBlanks();
    while (line[i] !== '}') {
      const ln = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
      if (!ln) fail(`invalid label name at column ${i + 1}`);
      const labelName = ln[0];
      if (labelName.startsWith('__')) fail(`reserved label name ${labelName}`);
      if (labelName in labels) fail(`label ${labelName} twice`);
      i += labelName.length;
      skipBlanks();
      if (line[i] !== '=') fail(`expected = after label ${labelName}`);
      i++;
      skipBlanks();
      if (line[i] !== '"') fail(`expected " to open the value of ${labelName}`);
      i++;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) fail(`unterminated value of ${labelName}`);
        if (c === '"') break;
        if (c === '\\') {
          const n = line[i + 1];
          if (n === '\\') value += '\\';
          else if (n === '"') value += '"';
          else if (n === 'n') value += '\n';
          else fail(`invalid escape \\${n ?? ''} in the value of ${labelName}`);
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      i++;
      labels[labelName] = value;
      skipBlanks();
      if (line[i] === ',') {
        i++;
        skipBlanks();
      } else if (line[i] !== '}') fail(`expected , or } after the value of ${labelName}`);
    }
    i++;
    separated = true;
  }
  const rest = line.slice(i);
  if (!separated) fail('expected blanks before the value');
  const fields = rest.trim().split(/[ \t]+/);
  if (fields.length < 1 || fields.length > 2 || fields[0] === '') fail('expected a value and an optional timestamp');
  const value = parseFloatStrict(fields[0]!);
  if (value === undefined) fail(`invalid value ${fields[0]}`);
  const sample: Sample = { name, labels, value };
  if (fields.length === 2) {
    if (!INT.test(fields[1]!)) fail(`invalid timestamp ${fields[1]}`);
    sample.timestamp = Number(fields[1]);
  }
  return sample;
}

/** The family a sample belongs to, given the families declared so far. */
function familyOf(sampleName: string, declared: Map<string, Family>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (sampleName.endsWith(suffix)) {
      const base = sampleName.slice(0, -suffix.length);
      const f = declared.get(base);
      if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return base;
    }
  }
  return sampleName;
}

const seriesKey = (s: Sample, without?: string) =>
  `${s.name}{${Object.keys(s.labels)
    .filter((k) => k !== without)
    .sort()
    .map((k) => `${k}=${JSON.stringify(s.labels[k])}`)
    .join(',')}}`;

function checkFamily(f: Family): void {
  function fail(why: string): never {
    throw new Error(`family ${f.name} (${f.type}): ${why}`);
  }
  const seen = new Set<string>();
  for (const s of f.samples) {
    const key = seriesKey(s);
    if (seen.has(key)) fail(`series ${key} twice`);
    seen.add(key);
  }
  if (f.type === 'counter' || f.type === 'gauge' || f.type === 'untyped') {
    for (const s of f.samples) {
      if (s.name !== f.name) fail(`sample ${s.name} in a ${f.type}`);
      if (f.type === 'counter' && !(s.value >= 0)) fail(`counter value ${s.value}`);
    }
  }
  if (f.type === 'summary') {
    for (const s of f.samples) {
      if (s.name === f.name) {
        const q = s.labels.quantile === undefined ? undefined : parseFloatStrict(s.labels.quantile);
        if (q === undefined || !(q >= 0 && q <= 1)) fail(`quantile ${s.labels.quantile}`);
      } else if (s.name !== `${f.name}_sum` && s.name !== `${f.name}_count`) fail(`sample ${s.name} in a summary`);
    }
  }
  if (f.type === 'histogram') {
    const groups = new Map<string, { buckets: Array<{ le: number; value: number }>; sum?: number; count?: number }>();
    const group = (s: Sample) => {
      const k = seriesKey({ ...s, name: '' }, 'le');
      let g = groups.get(k);
      if (!g) groups.set(k, (g = { buckets: [] }));
      return g;
    };
    for (const s of f.samples) {
      if (s.name === `${f.name}_bucket`) {
        if (s.labels.le === undefined) fail('bucket without le');
        const le = parseFloatStrict(s.labels.le);
        if (le === undefined || Number.isNaN(le)) fail(`le ${s.labels.le}`);
        group(s).buckets.push({ le, value: s.value });
      } else if (s.name === `${f.name}_sum`) {
        if ('le' in s.labels) fail('_sum with le');
        group(s).sum = s.value;
      } else if (s.name === `${f.name}_count`) {
        if ('le' in s.labels) fail('_count with le');
        group(s).count = s.value;
      } else fail(`sample ${s.name} in a histogram`);
    }
    for (const [k, g] of groups) {
      if (g.buckets.length === 0) fail(`${k}: no buckets`);
      for (let i = 1; i < g.buckets.length; i++) {
        const a = g.buckets[i - 1]!;
        const b = g.buckets[i]!;
        if (!(b.le > a.le)) fail(`${k}: le ${b.le} after ${a.le}`);
        if (b.value < a.value) fail(`${k}: bucket le=${b.le} (${b.value}) below le=${a.le} (${a.value}): not cumulative`);
      }
      const last = g.buckets[g.buckets.length - 1]!;
      if (last.le !== Infinity) fail(`${k}: no +Inf bucket`);
      if (g.count === undefined) fail(`${k}: no _count`);
      if (g.sum === undefined) fail(`${k}: no _sum`);
      if (g.count !== last.value) fail(`${k}: _count ${g.count} != +Inf bucket ${last.value}`);
      for (const b of g.buckets) if (!(b.value >= 0) || !Number.isInteger(b.value)) fail(`${k}: bucket count ${b.value}`);
    }
  }
}

/** Parses a whole exposition; throws ExpositionError (or a family's error) on the first violation. */
export function parseExposition(text: string): Map<string, Family> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition does not end with a newline');
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  let current: Family | undefined;
  // Every line of a family comes in one group: once another family's line is seen, it is closed.
  const switchTo = (name: string, fail: (why: string) => never): Family => {
    if (current?.name === name) return current;
    if (closed.has(name)) fail(`lines of ${name} are not one group`);
    if (current) closed.add(current.name);
    const f: Family = { name, type: 'untyped', samples: [] };
    families.set(name, f);
    current = f;
    return f;
  };
  const declaredType = new Set<string>();
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, idx) => {
    const fail = (why: string): never => {
      throw new ExpositionError(idx + 1, line, why);
    };
    if (/^[ \t]*$/.test(line)) return;
    if (line.startsWith('#')) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (!m) return; // an ordinary comment
      const [, kind, name, rest = ''] = m;
      if (!METRIC_NAME.test(name!)) fail(`invalid metric name ${name}`);
      const f = switchTo(name!, fail);
      if (kind === 'HELP') {
        if (f.help !== undefined) fail(`second HELP for ${name}`);
        f.help = unescapeHelp(rest, fail);
      } else {
        if (declaredType.has(name!)) fail(`second TYPE for ${name}`);
        if (f.samples.length > 0) fail(`TYPE for ${name} after its samples`);
        if (!TYPES.has(rest.trim() as MetricType)) fail(`unknown type ${rest}`);
        f.type = rest.trim() as MetricType;
        declaredType.add(name!);
      }
      return;
    }
    const sample = parseSample(line, fail);
    const f = switchTo(familyOf(sample.name, families), fail);
    f.samples.push(sample);
  });
  for (const f of families.values()) checkFamily(f);
  return families;
}

/** The value of the one sample of `name` whose labels include `labels` (summed when several match). */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value;
    }
  }
  return total;
}
