/**
 * Property-based fuzzing of every GraphQL operation (issue 15): one
 * operation per root field (queries, mutations, subscriptions), built from
 * the schema the server itself reports, sent with arbitrary variables
 * (biased towards each input type's own field names). Every answer must be
 * below 500, JSON (or an event stream) whose errors carry the contract's
 * codes, never internal_error; the process stays up.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storiesModel } from '../helpers/models.js';
import { authHeaders, gql, postJson, startServer, type RunningServer } from '../helpers/server.js';
import { checkGraphql, fuzzParams, nastyNumber, nastyString, send, tallyReport } from './lib.js';

interface TypeRef {
  kind: string;
  name: string | null;
  ofType: TypeRef | null;
}
interface Field {
  name: string;
  args: Array<{ name: string; type: TypeRef }>;
  type: TypeRef;
}
interface FullType {
  kind: string;
  name: string;
  fields: Field[] | null;
  inputFields: Array<{ name: string; type: TypeRef }> | null;
  enumValues: Array<{ name: string }> | null;
}

const TYPE_REF = 'kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }';
const INTROSPECT = `{ __schema { queryType { name } mutationType { name } subscriptionType { name }
  types { kind name fields { name args { name type { ${TYPE_REF} } } type { ${TYPE_REF} } }
          inputFields { name type { ${TYPE_REF} } } enumValues { name } } } }`;

const typeString = (t: TypeRef): string => (t.kind === 'NON_NULL' ? `${typeString(t.ofType!)}!` : t.kind === 'LIST' ? `[${typeString(t.ofType!)}]` : t.name!);
const named = (t: TypeRef): TypeRef => (t.ofType ? named(t.ofType) : t);

describe.skipIf(!storiesModel.present)(storiesModel.title('fuzz: every GraphQL operation'), () => {
  let server: RunningServer;
  const types = new Map<string, FullType>();
  const operations: Array<{ field: string; kind: 'query' | 'mutation' | 'subscription'; document: string; args: Field['args'] }> = [];
  const ids: string[] = [];

  beforeAll(async () => {
    server = await startServer({ RATE_LIMIT_PER_MINUTE: '0' });
    const evalSet = await postJson(`${server.url}/v1/datasets`, { name: 'fuzz', type: 'eval_set', records: [{ record_id: 'a', input: { prompt: 'Once' } }] });
    const corpus = await postJson(`${server.url}/v1/datasets`, { name: 'fuzz corpus', type: 'rag_corpus', records: [{ doc_id: 'd1', text: 'Lily had a red ball.' }] });
    ids.push(evalSet.json.dataset_id, corpus.json.dataset_id, corpus.json.index_id);
    const schema = (await gql(server.url, INTROSPECT)).json.data.__schema;
    for (const t of schema.types as FullType[]) types.set(t.name, t);
    for (const [kind, root] of [['query', schema.queryType], ['mutation', schema.mutationType], ['subscription', schema.subscriptionType]] as const) {
      if (!root) continue;
      for (const f of types.get(root.name)!.fields!) {
        const vars = f.args.map((a) => `$${a.name}: ${typeString(a.type)}`).join(', ');
        const args = f.args.map((a) => `${a.name}: $${a.name}`).join(', ');
        const leaf = ['SCALAR', 'ENUM'].includes(named(f.type).kind);
        const document = `${kind}${vars ? `(${vars})` : ''} { ${f.name}${args ? `(${args})` : ''}${leaf ? '' : ' { __typename }'} }`;
        operations.push({ field: f.name, kind, document, args: f.args });
      }
    }
  });
  afterAll(async () => {
    console.log(`GraphQL fuzz answers by route and status:\n${tallyReport()}`);
    await server?.stop();
  });

  /** A value for a GraphQL type: mostly the right shape (enum names, input fields), sometimes anything. */
  const valueFor = (t: TypeRef, depth = 0): fc.Arbitrary<unknown> => {
    const anything = fc.oneof(nastyString, nastyNumber, fc.boolean(), fc.constant(null), fc.jsonValue({ maxDepth: 2 }));
    if (depth > 3) return anything;
    if (t.kind === 'NON_NULL') return fc.oneof({ weight: 6, arbitrary: valueFor(t.ofType!, depth) }, { weight: 1, arbitrary: anything });
    if (t.kind === 'LIST') return fc.oneof({ weight: 4, arbitrary: fc.array(valueFor(t.ofType!, depth + 1), { maxLength: 3 }) }, { weight: 1, arbitrary: anything });
    const full = types.get(t.name!);
    if (full?.kind === 'ENUM') return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...full.enumValues!.map((e) => e.name)) }, { weight: 1, arbitrary: anything });
    if (full?.kind === 'INPUT_OBJECT') {
      const fields = full.inputFields!;
      const model = Object.fromEntries(fields.map((f) => [f.name, valueFor(f.type, depth + 1)]));
      return fc.oneof({ weight: 5, arbitrary: fc.record(model, { requiredKeys: [] }) }, { weight: 1, arbitrary: anything });
    }
    switch (t.name) {
      case 'Int':
        return fc.oneof(fc.constantFrom(0, 1, 4, 16), nastyNumber, anything);
      case 'Float':
        return fc.oneof(fc.constantFrom(0, 0.5, 1), nastyNumber, anything);
      case 'Boolean':
        return fc.oneof(fc.boolean(), anything);
      case 'ID':
        return fc.oneof(fc.constantFrom(...ids), nastyString, anything);
      case 'String':
        return fc.oneof(fc.constantFrom('Once upon a time', ...ids), nastyString, anything);
      default:
        return fc.oneof(fc.jsonValue({ maxDepth: 3 }), anything);
    }
  };

  it('every operation with arbitrary variables: below 500, contract codes, never internal_error', async () => {
    expect(operations.length).toBeGreaterThan(20);
    const cases = fc.constantFrom(...operations).chain((op) =>
      fc.record(Object.fromEntries(op.args.map((a) => [a.name, valueFor(a.type)])), { requiredKeys: [] }).map((variables) => ({ op, variables })),
    );
    await fc.assert(
      fc.asyncProperty(cases, async ({ op, variables }) => {
        const headers = { ...authHeaders, accept: op.kind === 'subscription' ? 'text/event-stream' : 'application/json' };
        const a = await send(`${server.url}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query: op.document, variables }) });
        checkGraphql(`${op.document} ${JSON.stringify(variables).slice(0, 300)}`, a);
      }),
      { ...fuzzParams, numRuns: fuzzParams.numRuns * 8 },
    );
  }, 600_000);

  it('arbitrary documents and parameters: never a 5xx', async () => {
    const doc = fc.oneof(nastyString, fc.constantFrom(...operations.map((o) => o.document)).map((d) => d.slice(0, Math.floor(d.length / 2))), fc.constant('{'.repeat(5000)));
    await fc.assert(
      fc.asyncProperty(doc, fc.jsonValue({ maxDepth: 3 }), fc.oneof(nastyString, fc.constant(undefined)), async (query, variables, operationName) => {
        const a = await send(`${server.url}/graphql`, { method: 'POST', headers: authHeaders, body: JSON.stringify({ query, variables, operationName }) });
        checkGraphql(`arbitrary ${String(query).slice(0, 100)}`, a);
      }),
      fuzzParams,
    );
  }, 300_000);

  it('the process stayed up', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await gql(server.url, '{ health { status } }')).json.data.health.status).toBe('OK');
  });
});
