/**
 * The console's GraphQL operations against schema.graphql: gql.tada writes
 * the schema's types, validates every document, and tsc checks the code
 * that reads the results (npm run typecheck:web). CI runs `npm test` only,
 * so a schema change that breaks an operation fails here.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/server.js';

const run = promisify(execFile);
const bin = (name: string) => path.join(REPO, 'node_modules', '.bin', name);

async function check(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run(bin(cmd), args, { cwd: REPO, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${e.stdout ?? ''}\n${e.stderr ?? ''}\n${e.message}`);
  }
}

describe('the web console against schema.graphql', () => {
  it('every operation is valid and every result is read with its type (gql.tada check, tsc -p web)', async () => {
    await check('gql.tada', ['generate-output', '--tsconfig', 'web/tsconfig.json']);
    const out = await check('gql.tada', ['check', '--tsconfig', 'web/tsconfig.json']);
    expect(out).not.toMatch(/error/i);
    await check('tsc', ['--noEmit', '-p', 'web']);
  }, 180_000);
});
