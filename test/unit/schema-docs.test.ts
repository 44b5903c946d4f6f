import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isInterfaceType,
  isIntrospectionType,
  isObjectType,
  isSpecifiedScalarType,
  type GraphQLEnumType,
  type GraphQLObjectType,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { FINISH_REASONS } from '../../src/engine/types.js';
import { schema } from '../../src/schema/index.js';
import { enumName } from '../../src/schema/enums.js';
import { connectionFrom } from '../../src/schema/paging.js';
import { CRITERIA } from '../../src/services/scoring/criteria.js';
import { datasetCursor, datasetPosition, keysetPage } from '../../src/storage/cursor.js';
import { RAG_MODES } from '../../src/services/rag-schema.js';
import { BATCH_STATUSES, DATASET_STATUSES, DATASET_TYPES, FAILURE_REASONS, ITEM_STATUSES, JUDGES, RAG_INDEX_STATUSES } from '../../src/storage/types.js';

const blank = (d: string | null | undefined) => !d || d.trim() === '';

/** Every public type, field, argument and enum value without a description. */
function undocumented(): string[] {
  const missing: string[] = [];
  for (const type of Object.values(schema.getTypeMap())) {
    if (isIntrospectionType(type) || isSpecifiedScalarType(type)) continue;
    if (blank(type.description)) missing.push(type.name);
    if (isObjectType(type) || isInterfaceType(type)) {
      for (const field of Object.values(type.getFields())) {
        if (blank(field.description)) missing.push(`${type.name}.${field.name}`);
        for (const arg of field.args) if (blank(arg.description)) missing.push(`${type.name}.${field.name}(${arg.name})`);
      }
    }
    if (isInputObjectType(type)) {
      for (const field of Object.values(type.getFields())) if (blank(field.description)) missing.push(`${type.name}.${field.name}`);
    }
    if (isEnumType(type)) {
      for (const value of type.getValues()) if (blank(value.description)) missing.push(`${type.name}.${value.name}`);
    }
  }
  return missing;
}

const field = (type: string, name: string) => (schema.getType(type) as GraphQLObjectType).getFields()[name];

describe('the GraphQL schema documents itself', () => {
  it('every type, field, argument, enum and enum value has a description', () => {
    expect(undocumented()).toEqual([]);
  });

  it('input descriptions state the ranges and defaults of the zod schemas that validate them', () => {
    const chat = schema.getType('ChatInput');
    if (!isInputObjectType(chat)) throw new Error('ChatInput is not an input type');
    expect(chat.getFields().maxNewTokens?.description).toBe('Tokens to generate at most. 1..1024, default 160.');
    expect(chat.getFields().mode?.description).toContain('Default SINGLE.');
    expect(field('Query', 'datasets')?.args.find((a) => a.name === 'first')?.description).toContain('1..100, default 20.');
    const ragSearch = schema.getType('RagSearchInput');
    if (!isInputObjectType(ragSearch)) throw new Error('RagSearchInput is not an input type');
    expect(ragSearch.getFields().topK?.description).toBe('Chunks to return. 1..50, default 5.');
    expect(ragSearch.getFields().mode?.description).toContain('Default HYBRID.');
  });
});

describe('statuses are enums built from their one list', () => {
  const enumOf = (name: string) => {
    const type = schema.getType(name);
    if (!isEnumType(type)) throw new Error(`${name} is not an enum`);
    return type;
  };
  const byName = (a: unknown[], b: unknown[]) => String(a[0]).localeCompare(String(b[0]));
  const served = (type: GraphQLEnumType) => type.getValues().map((v) => [v.name, v.value]).sort(byName);
  const expected = (values: readonly string[]) => values.map((v) => [enumName(v), v]).sort(byName);

  it.each([
    ['BatchStatus', BATCH_STATUSES],
    ['BatchItemStatus', ITEM_STATUSES],
    ['FailureReason', FAILURE_REASONS],
    ['DatasetType', DATASET_TYPES],
    ['DatasetStatus', DATASET_STATUSES],
    ['Criterion', CRITERIA],
    ['Judge', JUDGES],
    ['RagIndexStatus', RAG_INDEX_STATUSES],
    ['RagSearchMode', RAG_MODES],
    // Results never finish `cancelled`: the client that would read it is gone.
    ['FinishReason', FINISH_REASONS.filter((r) => r !== 'cancelled')],
  ] as const)('%s serves exactly its list', (name, values) => {
    expect(served(enumOf(name))).toEqual(expected(values));
  });

  it('maps stored values to enum names', () => {
    expect(enumName('completed_with_failures')).toBe('COMPLETED_WITH_FAILURES');
    expect(enumName('decoder-only')).toBe('DECODER_ONLY');
  });

  it.each([
    ['BatchEval', 'status', 'BatchStatus'],
    ['BatchEval', 'criteria', 'Criterion'],
    ['BatchItem', 'status', 'BatchItemStatus'],
    ['BatchItem', 'reason', 'FailureReason'],
    ['Dataset', 'type', 'DatasetType'],
    ['Dataset', 'status', 'DatasetStatus'],
    ['ChatResult', 'finishReason', 'FinishReason'],
    ['ChatStreamEvent', 'phase', 'ChatPhase'],
    ['Health', 'status', 'HealthStatus'],
    ['Health', 'redis', 'RedisState'],
    ['DatabaseHealth', 'kind', 'DatabaseKind'],
    ['DatabaseHealth', 'state', 'DatabaseState'],
    ['Model', 'state', 'ModelState'],
    ['Model', 'graph', 'ModelGraph'],
    ['Score', 'criterion', 'Criterion'],
    ['EvalRun', 'criteria', 'Criterion'],
    ['EvalRun', 'judge', 'Judge'],
    ['ScoreDistribution', 'criterion', 'Criterion'],
    ['RagIndex', 'status', 'RagIndexStatus'],
    ['RagRetrieval', 'mode', 'RagSearchMode'],
  ])('%s.%s is the enum %s', (type, name, enumType) => {
    const f = field(type, name);
    expect(f && getNamedType(f.type).name).toBe(enumType);
  });
});

describe('paged lists', () => {
  const connections = Object.values(schema.getTypeMap()).filter((t): t is GraphQLObjectType => isObjectType(t) && t.name.endsWith('Connection'));

  it('every connection has the one relay shape, and is paged forward by first and after only', () => {
    expect(connections.map((c) => c.name).sort()).toEqual(['BatchEvalConnection', 'BatchFailureConnection', 'DatasetConnection', 'DatasetRecordConnection', 'RagIndexConnection']);
    for (const c of connections) {
      const fields = c.getFields();
      expect(Object.keys(fields)).toEqual(expect.arrayContaining(['edges', 'nodes', 'pageInfo']));
      expect(getNamedType(fields.pageInfo!.type).name).toBe('PageInfo');
      const edge = getNamedType(fields.edges!.type) as GraphQLObjectType;
      expect(Object.keys(edge.getFields()).sort()).toEqual(['cursor', 'node']);
    }
    const listFields = Object.values(schema.getTypeMap())
      .filter((t): t is GraphQLObjectType => isObjectType(t) && !t.name.startsWith('__'))
      .flatMap((t) => Object.values(t.getFields()).filter((f) => getNamedType(f.type).name.endsWith('Connection')));
    expect(listFields.map((f) => f.name).sort()).toEqual(['batchEvals', 'datasets', 'failures', 'ragIndexes', 'records']);
    for (const f of listFields) expect(f.args.map((a) => a.name)).toEqual(expect.arrayContaining(['first', 'after']));
    for (const f of listFields) expect(f.args.map((a) => a.name)).not.toEqual(expect.arrayContaining(['last']));
    for (const f of listFields) expect(f.args.map((a) => a.name)).not.toEqual(expect.arrayContaining(['before']));
    expect(Object.keys(schema.getQueryType()!.getFields())).not.toContain('node');
  });

  it("gives each edge its item's cursor in the storage codec; the last one is the page's nextCursor", () => {
    const rows = [3, 2, 1].map((n) => ({ id: `ds_${n}`, createdAt: new Date(Date.UTC(2026, 0, n)).toISOString() }));
    const page = keysetPage(rows, 2, (r) => r, datasetCursor, datasetPosition);
    const conn = connectionFrom(page, datasetCursor, datasetPosition);
    expect(conn.edges.map((e) => datasetCursor.decode(e.cursor))).toEqual(rows.slice(0, 2).map(datasetPosition));
    expect(conn.pageInfo).toEqual({
      hasNextPage: true,
      hasPreviousPage: false,
      startCursor: conn.edges[0]!.cursor,
      endCursor: page.nextCursor,
    });
    const last = connectionFrom(keysetPage(rows.slice(2), 2, (r) => r, datasetCursor, datasetPosition), datasetCursor, datasetPosition);
    expect(last.pageInfo.hasNextPage).toBe(false);
    expect(last.pageInfo.endCursor).toBe(last.edges[0]!.cursor);
    expect(connectionFrom({ items: [], nextCursor: null }, datasetCursor, datasetPosition).pageInfo).toEqual({
      hasNextPage: false,
      hasPreviousPage: false,
      startCursor: null,
      endCursor: null,
    });
  });
});
