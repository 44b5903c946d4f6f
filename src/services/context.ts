/** What every service call knows about the request it serves. Built once per request. */
export interface RequestContext {
  requestId: string;
  /** Non-secret id of the caller's API key (first 12 hex digits of its SHA-256). */
  keyId: string | null;
  /** Aborts when the client goes away. */
  signal: AbortSignal;
  /** The GraphQL operation's type (query, mutation, subscription), for metrics. */
  operationType?: string;
  /** Fields of the GraphQL operation that run the model (each counts one request against the rate limit). */
  generatingFields?: number;
  /** Set by a service that generated text, for the request log. */
  usage?: { promptTokens: number; completionTokens: number; cacheHit: boolean };
}
