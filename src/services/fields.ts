import { z } from 'zod';

/**
 * Zod field builders whose messages are the contract's words, each naming
 * its field once ("max_new_tokens must be between 1 and 1024"). Every
 * request schema is built from these, so the same kind of field fails the
 * same way on every route and surface.
 */

/** The message for a missing or mistyped field. */
export const typeError = (name: string, kind: string) => (iss: { input: unknown }) =>
  iss.input === undefined ? `${name} is required` : `${name} must be ${kind}`;

/** A number in [min, max]. */
export const number = (name: string, min: number, max: number) =>
  z
    .number({ error: typeError(name, 'a number') })
    .min(min, { error: `${name} must be between ${min} and ${max}` })
    .max(max, { error: `${name} must be between ${min} and ${max}` });

/** An integer in [min, max]. */
export const int = (name: string, min: number, max: number) => number(name, min, max).int({ error: `${name} must be an integer` });

/** A seed: any 32-bit unsigned integer. */
export const seed = (name = 'seed') => int(name, 0, 4_294_967_295);

/** Non-blank text of at most `max` characters. */
export const text = (name: string, max: number) =>
  z
    .string({ error: typeError(name, 'a string') })
    .max(max, { error: `${name} must be at most ${max} characters` })
    .refine((s) => s.trim().length > 0, { error: `${name} must be non-empty` });

/** Optional text of at most `max` characters (null allowed, as "absent"). */
export const optionalText = (name: string, max: number) =>
  z.string({ error: `${name} must be a string` }).max(max, { error: `${name} must be at most ${max} characters` }).nullish();

/** One of a fixed list of strings. */
export const oneOf = <const T extends readonly [string, ...string[]]>(name: string, values: T) =>
  z.enum(values, {
    error: (iss) =>
      iss.input === undefined
        ? `${name} is required`
        : `${name} must be ${values.length === 2 ? `"${values[0]}" or "${values[1]}"` : `one of ${values.join(', ')}`}`,
  });

/** The top-level shape of every JSON request body. */
export const requestBody = <S extends z.core.$ZodLooseShape>(shape: S) => z.object(shape, { error: 'request body must be a JSON object' });
