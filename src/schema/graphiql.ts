import { createRequire } from 'node:module';
import path from 'node:path';
import { Router } from 'express';
import type { GraphiQLOptions } from 'graphql-yoga';
import { notFound } from '../errors.js';

/**
 * GraphiQL served entirely from this server. Yoga's own page pulls its
 * script, styles, editor workers and favicon from unpkg and GitHub, so on a
 * machine without internet /graphql is a blank "Loading..." page; here the
 * same build comes from the @graphql-yoga/graphiql package in the lock file.
 */

const require = createRequire(import.meta.url);
const PKG_DIR = path.dirname(require.resolve('@graphql-yoga/graphiql/package.json'));
const VERSION: string = require('@graphql-yoga/graphiql/package.json').version;

/** The version is in the URL, so a package upgrade is a new URL and the old copies can be cached for good. */
const ASSETS_PATH = `/graphql/assets/${VERSION}`;

/** URL name → file in the package's dist/. Nothing outside this list is served (no path from the request reaches the disk). */
const ASSETS: ReadonlyMap<string, string> = new Map([
  ['yoga-graphiql.js', 'yoga-graphiql.umd.js'],
  ['graphiql.css', 'graphiql.css'],
  ['editor.worker.js', 'monacoeditorwork/editor.worker.bundle.js'],
  ['json.worker.js', 'monacoeditorwork/json.worker.bundle.js'],
  // The package's own file name has the double dot.
  ['graphql.worker.js', 'monacoeditorwork/graphql.worker..bundle.js'],
]);

const assetUrl = (name: string) => `${ASSETS_PATH}/${name}`;

/** The GraphiQL assets: no key needed (the page itself needs none either), cached for a year. */
export function graphiqlAssetsRouter(): Router {
  const router = Router();
  // One route template (`:version/:file`) keeps the metrics' route label bounded.
  router.get('/graphql/assets/:version/:file', (req, res, next) => {
    const file = req.params.version === VERSION ? ASSETS.get(req.params.file) : undefined;
    if (!file) return next(notFound(`No GraphiQL asset ${req.path}`));
    res.sendFile(path.join(PKG_DIR, 'dist', file), { maxAge: '365d', immutable: true }, (err) => {
      if (err && !res.headersSent) next(err);
    });
  });
  return router;
}

/** The development key the server accepts when API_KEYS is unset; never a configured key. */
const PLACEHOLDER_KEY = 'dev-local-key';

// Lines short enough for the editor's width on a laptop screen.
const EXAMPLE = `# Operations need an API key, sent as a header: the
# Headers tab below holds {"x-api-key": "..."}.
# dev-local-key is the server's key when API_KEYS is
# unset; put your own key there if the server has one.
# Run: the ▶ button, or Ctrl-Enter. Also try
#   { health { status model modelLoaded } }

mutation Chat {
  chat(input: {
    prompt: "Once upon a time"
    temperature: 0
    maxNewTokens: 40
  }) {
    response
    promptTokens
    completionTokens
    finishReason
    latencyMs
  }
}
`;

/** Yoga's `graphiql` option: what a first visit shows. */
export const graphiqlOptions = {
  title: 'Inference server',
  defaultQuery: EXAMPLE,
  headers: JSON.stringify({ 'x-api-key': PLACEHOLDER_KEY }, null, 2),
  // Open on the Headers tab, where the key goes.
  defaultEditorToolsVisibility: 'headers',
} satisfies GraphiQLOptions;

/** JSON safe inside a <script> element. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * Yoga's `renderGraphiQL` option: the page with every asset from this server.
 * Yoga's React component always hands GraphiQL an initial query (its
 * welcome text) unless given `query`, and an initial query beats
 * `defaultQuery`; so `defaultQuery` is passed on as `query`.
 */
export function renderGraphiQL({ defaultQuery, ...options }: GraphiQLOptions): string {
  const title = escapeHtml(options.title ?? 'GraphiQL');
  const pageOptions = defaultQuery === undefined ? options : { ...options, query: defaultQuery };
  // Monaco's labels for its workers; same-origin workers need no blob: detour (yoga's page makes blobs of unpkg's copies).
  const workers = {
    editorWorkerService: assetUrl('editor.worker.js'),
    json: assetUrl('json.worker.js'),
    graphql: assetUrl('graphql.worker.js'),
  };
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${assetUrl('graphiql.css')}">
</head>
<body id="body" class="no-focus-outline">
<noscript>You need to enable JavaScript to run GraphiQL.</noscript>
<div id="root">Loading ${title}...</div>
<script>
const workers = ${scriptJson(workers)};
self.MonacoEnvironment = { globalAPI: false, getWorkerUrl: (_, label) => workers[label] ?? workers.editorWorkerService };
</script>
<script src="${assetUrl('yoga-graphiql.js')}"></script>
<script>YogaGraphiQL.renderYogaGraphiQL(document.getElementById('root'), ${scriptJson(pageOptions)});</script>
</body>
</html>
`;
}
