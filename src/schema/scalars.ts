import { Kind, type ValueNode } from 'graphql';
import { builder } from './builder.js';

function literal(node: ValueNode): unknown {
  switch (node.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return node.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value);
    case Kind.NULL:
      return null;
    case Kind.LIST:
      return node.values.map(literal);
    case Kind.OBJECT:
      return Object.fromEntries(node.fields.map((f) => [f.name.value, literal(f.value)]));
    default:
      return undefined;
  }
}

/** Any JSON value: dataset records and metadata, whose shape the dataset type decides. */
export const JsonScalar = builder.scalarType('JSON', {
  description: 'A JSON value.',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral: (node) => literal(node),
});
