import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * Parses `--name value` options strictly; on any mistake prints the problem
 * and the usage line to stderr and exits with status 2.
 */
export function parseCli<T extends NonNullable<ParseArgsConfig['options']>>(
  options: T,
  usage: string,
  required: (keyof T & string)[],
): Record<keyof T, string | undefined> {
  const fail = (msg: string): never => {
    process.stderr.write(`error: ${msg}\nusage: ${usage}\n`);
    process.exit(2);
  };
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ options, strict: true, allowPositionals: false }));
  } catch (err) {
    return fail((err as Error).message);
  }
  if (values['help']) {
    process.stdout.write(`usage: ${usage}\n`);
    process.exit(0);
  }
  for (const name of required) {
    if (typeof values[name] !== 'string' || values[name] === '') fail(`--${name} is required`);
  }
  return values as Record<keyof T, string | undefined>;
}
