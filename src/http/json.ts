import express, { type RequestHandler } from 'express';

/**
 * A JSON request body of at most `limit` bytes; `anyType` parses whatever
 * the content type says (the contract's routes do). JSON.parse makes
 * `__proto__` and `constructor` keys own data properties, never prototypes;
 * the services read bodies through zod schemas of known fields, and nothing
 * merges client objects with Object.assign (test/integration/hostile-input.test.ts).
 */
export function jsonBody(limit: number, anyType = true): RequestHandler {
  return express.json({ limit, ...(anyType ? { type: () => true } : {}) });
}
