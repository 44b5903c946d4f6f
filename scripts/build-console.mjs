#!/usr/bin/env node
/**
 * Builds the web console (web/) into web/dist with Vite, when it can and
 * when it must. Plain JavaScript, so it runs without tsx: it is the
 * `prepare` script (run by every `npm ci`, `npm ci --omit=dev` included) and
 * the server starts it when it finds the console missing.
 *
 *   node scripts/build-console.mjs          build if web/dist is missing or older than its sources
 *   node scripts/build-console.mjs --force  build even if it is up to date
 *
 * Exits 0 without building when there is nothing it can build: no web/
 * sources (the Docker stages that install dependencies before copying the
 * sources) or no Vite (a production install, `npm ci --omit=dev`). Exits 1
 * only when a build was tried and failed.
 *
 * web/dist/.sources holds a hash of what the build read (web/ sources,
 * schema.graphql, package-lock.json); the build is skipped when it matches.
 * Builds go to a fresh folder swapped in at the end, one at a time under a
 * lock folder, so several servers starting together build once and never
 * serve a half-written folder.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WEB = path.join(REPO, 'web');
const DIST = path.join(WEB, 'dist');
const STAMP = path.join(DIST, '.sources');
const LOCK = path.join(WEB, '.build-lock');
/** A lock older than this was left by a build that died: taken over. */
const STALE_LOCK_MS = 5 * 60_000;

const force = process.argv.includes('--force');
const say = (msg) => process.stdout.write(`build-console: ${msg}\n`);

/** Every file under dir (sorted), skipping build output and generated types. */
function files(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.name === 'dist' || entry.name.startsWith('.') || entry.name === 'node_modules' || entry.name === 'graphql-env.d.ts') continue;
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...files(p));
    else if (entry.isFile()) out.push(p);
  }
  return out;
}

/** What the build reads: a change to any of it makes web/dist stale. */
function sourcesHash() {
  const h = createHash('sha256');
  for (const f of [...files(WEB), path.join(REPO, 'schema.graphql'), path.join(REPO, 'package-lock.json')]) {
    if (!fs.existsSync(f)) continue;
    h.update(path.relative(REPO, f)).update('\0').update(fs.readFileSync(f)).update('\0');
  }
  return h.digest('hex');
}

const upToDate = (hash) => fs.existsSync(path.join(DIST, 'index.html')) && fs.existsSync(STAMP) && fs.readFileSync(STAMP, 'utf8').trim() === hash;

function takeLock() {
  try {
    fs.mkdirSync(LOCK);
    return true;
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
    const age = Date.now() - fs.statSync(LOCK).mtimeMs;
    if (age > STALE_LOCK_MS) {
      fs.rmSync(LOCK, { recursive: true, force: true });
      return takeLock();
    }
    return false;
  }
}

async function main() {
  if (!fs.existsSync(path.join(WEB, 'index.html')) || !fs.existsSync(path.join(WEB, 'vite.config.ts'))) {
    say('no web/ sources here: nothing to build');
    return 0;
  }
  const require = createRequire(path.join(REPO, 'package.json'));
  let vitePath;
  try {
    vitePath = require.resolve('vite');
  } catch {
    say('vite is not installed (a production install?): the console is not built; `npm ci` with the dev dependencies builds it');
    return 0;
  }
  let hash = sourcesHash();
  if (!force && upToDate(hash)) {
    // Same contents, newer file times (a checkout, a touch): the stamp moves, so the server's time check passes again.
    const now = new Date();
    fs.utimesSync(STAMP, now, now);
    return 0;
  }

  // One build at a time: wait for another process's build, then check again.
  const waitUntil = Date.now() + STALE_LOCK_MS;
  while (!takeLock()) {
    if (Date.now() > waitUntil) throw new Error(`lock ${LOCK} held too long`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const tmp = path.join(WEB, `.dist-${process.pid}`);
  const old = path.join(WEB, `.dist-old-${process.pid}`);
  try {
    hash = sourcesHash();
    if (!force && upToDate(hash)) return 0;
    say('building web/ with vite');
    const started = Date.now();
    const vite = await import(pathToFileURL(vitePath).href);
    await vite.build({
      configFile: path.join(WEB, 'vite.config.ts'),
      root: WEB,
      logLevel: 'warn',
      build: { outDir: tmp, emptyOutDir: true },
    });
    fs.writeFileSync(path.join(tmp, '.sources'), `${hash}\n`);
    if (fs.existsSync(DIST)) fs.renameSync(DIST, old);
    fs.renameSync(tmp, DIST);
    say(`built web/dist in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(old, { recursive: true, force: true });
    fs.rmSync(LOCK, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`build-console: the console build failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
