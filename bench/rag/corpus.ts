/**
 * The retrieval-quality corpus: documentation that Debian packages install
 * under /usr/share/doc, written by the packages' authors. A document is one
 * file: READMEs, FAQs, Markdown, reStructuredText, plain-text and HTML
 * documentation (gzipped or not), without changelogs, copyright files, the
 * generated Node.js API reference, git's release notes, font coverage tables
 * and HTML manual trees (large, repetitive sets that would drown the rest).
 * Identical files installed by several packages count once (the first path
 * in sort order). HTML is reduced to its text; each document is its first
 * MAX_DOC_CHARS characters.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

export const DOC_ROOT = '/usr/share/doc';
export const MAX_DOC_CHARS = 20_000;
const MIN_BYTES = 500;

const INCLUDE = /(^README|^FAQ|\.md$|\.txt$|\.rst$|\.html$|\.markdown$)/i;
const EXCLUDE_NAME = /(changelog|^copyright$|^CMakeLists\.txt$)/i;
const EXCLUDE_PATH = [/^nodejs\/api\//, /^nodejs\/contributing\//, /^git\/RelNotes\//, /^fonts-dejavu/, /\/html\//, /\/gtk-doc\//];

export interface CorpusDoc {
  doc_id: string;
  text: string;
  metadata: { package: string; file: string };
}

function* walk(dir: string, rel = ''): Generator<string> {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) yield* walk(path.join(dir, e.name), r);
    else if (e.isFile()) yield r;
  }
}

/** Tags out, entities decoded (the common ones), blank runs kept as paragraph breaks. */
function htmlText(html: string): string {
  return html
    .replace(/<(script|style)[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<\/(p|div|h[1-6]|li|tr|pre|table|ul|ol|dl|dd|dt|br)\s*>|<br\s*\/?>/gi, '\n\n')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&apos;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/[ \t]+/g, ' ')
    .replace(/\n\s*\n\s*(\n\s*)+/g, '\n\n');
}

/** The corpus as records for a rag_corpus upload, and its content hash (changes when the machine's docs do). */
export function loadDocCorpus(root = DOC_ROOT): { docs: CorpusDoc[]; hash: string } {
  const docs: CorpusDoc[] = [];
  const seen = new Set<string>();
  const hash = createHash('sha256');
  for (const rel of walk(root)) {
    const base = path.basename(rel).replace(/\.gz$/, '');
    if (!INCLUDE.test(base) || EXCLUDE_NAME.test(base) || EXCLUDE_PATH.some((re) => re.test(rel))) continue;
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(path.join(root, rel));
      if (rel.endsWith('.gz')) bytes = zlib.gunzipSync(bytes);
    } catch {
      continue;
    }
    if (bytes.length < MIN_BYTES) continue;
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (seen.has(digest)) continue;
    seen.add(digest);
    let text = bytes.toString('utf8').replace(/\u0000/g, '');
    if (/\.html?$/i.test(base)) text = htmlText(text);
    text = text.slice(0, MAX_DOC_CHARS).replace(/[\uD800-\uDBFF]$/, '');
    if (text.trim().length === 0) continue;
    hash.update(rel).update(digest);
    docs.push({ doc_id: rel, text, metadata: { package: rel.split('/')[0]!, file: base } });
  }
  return { docs, hash: hash.digest('hex').slice(0, 16) };
}

export interface Question {
  q: string;
  doc: string;
}

export function loadQuestions(file: string): Question[] {
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { questions: Question[] }).questions;
}
