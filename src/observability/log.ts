/**
 * What every layer needs of the process logger (pino's Logger satisfies it).
 * Services, routes and resolvers take this rather than pino itself, so they
 * can be given any logger in tests.
 */
export interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
