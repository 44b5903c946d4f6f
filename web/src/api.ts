/**
 * The console's one way to the server: GraphQL over fetch (queries,
 * mutations, and subscriptions as server-sent events), plus the two REST
 * calls GraphQL does not offer (file uploads and artifact downloads).
 *
 * The API key lives in sessionStorage (this tab, until it closes) and goes
 * in the x-api-key header, never in a URL. A 401 forgets it and sends the
 * user back to the key form.
 */
import { print } from '@0no-co/graphql.web';
import type { TadaDocumentNode } from 'gql.tada';

const KEY_STORAGE = 'inference-console.api-key';

export function apiKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function saveKey(key: string): void {
  sessionStorage.setItem(KEY_STORAGE, key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(KEY_STORAGE);
}

/** An error the server answered with: the contract's code, the HTTP status, its details. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

let unauthorizedHandler: (message: string) => void = () => {};

/** Called when the server refuses the key (the app shows the key form). */
export function onUnauthorized(handler: (message: string) => void): void {
  unauthorizedHandler = handler;
}

function refused(message: string): never {
  forgetKey();
  unauthorizedHandler(message);
  throw new ApiError(message, 'unauthorized', 401);
}

function authHeaders(extra: Record<string, string> = {}): Record<string, string> {
  const key = apiKey();
  if (!key) refused('Enter the API key.');
  return { 'x-api-key': key, ...extra };
}

interface GraphQLErrorJson {
  message: string;
  extensions?: { code?: string; details?: unknown };
}

function throwGraphQLErrors(errors: GraphQLErrorJson[], status: number): never {
  const e = errors[0]!;
  const code = e.extensions?.code ?? 'error';
  if (code === 'unauthorized') refused(`The server refused the key: ${e.message}`);
  throw new ApiError(e.message, code, status, e.extensions?.details);
}

/** The request body of an operation, exactly as sent (also what "copy as GraphQL" shows). */
export function operationBody<R, V>(doc: TadaDocumentNode<R, V>, variables: V): { query: string; variables: V } {
  return { query: print(doc), variables };
}

/** Runs a query or mutation; resolves with its data, rejects with an ApiError. */
export async function request<R, V>(doc: TadaDocumentNode<R, V>, variables: V, signal?: AbortSignal): Promise<R> {
  const res = await fetch('/graphql', {
    method: 'POST',
    headers: authHeaders({ 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' }),
    body: JSON.stringify(operationBody(doc, variables)),
    ...(signal ? { signal } : {}),
  });
  if (res.status === 401) refused('The server refused the key.');
  let body: { data?: R; errors?: GraphQLErrorJson[] };
  try {
    body = (await res.json()) as typeof body;
  } catch {
    throw new ApiError(`The server answered HTTP ${res.status}`, 'http_error', res.status);
  }
  if (body.errors?.length) throwGraphQLErrors(body.errors, res.status);
  if (body.data === undefined) throw new ApiError('The server answered without data', 'http_error', res.status);
  return body.data;
}

/**
 * Runs a subscription over server-sent events (graphql-yoga's
 * distinct-connections protocol): yields each event's data as it arrives,
 * ends when the server completes the stream. Aborting the signal closes it.
 */
export async function* subscribe<R, V>(doc: TadaDocumentNode<R, V>, variables: V, signal?: AbortSignal): AsyncGenerator<R> {
  const res = await fetch('/graphql', {
    method: 'POST',
    headers: authHeaders({ 'content-type': 'application/json', accept: 'text/event-stream' }),
    body: JSON.stringify(operationBody(doc, variables)),
    ...(signal ? { signal } : {}),
  });
  if (res.status === 401) refused('The server refused the key.');
  if (!res.ok || !res.body || !(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
    let body: { errors?: GraphQLErrorJson[] } = {};
    try {
      body = (await res.json()) as typeof body;
    } catch {
      // not JSON
    }
    if (body.errors?.length) throwGraphQLErrors(body.errors, res.status);
    throw new ApiError(`The server answered HTTP ${res.status}`, 'http_error', res.status);
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n/g, '\n');
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
        }
        if (event === 'complete') return;
        if (data.length === 0) continue;
        const payload = JSON.parse(data.join('\n')) as { data?: R; errors?: GraphQLErrorJson[] };
        if (payload.errors?.length) throwGraphQLErrors(payload.errors, res.status);
        if (payload.data !== undefined && payload.data !== null) yield payload.data;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** A REST error body ({error: {code, message, details}}) as an ApiError. */
async function restError(res: Response): Promise<ApiError> {
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string; details?: unknown } };
    if (body.error) return new ApiError(body.error.message ?? `HTTP ${res.status}`, body.error.code ?? 'error', res.status, body.error.details);
  } catch {
    // not JSON
  }
  return new ApiError(`The server answered HTTP ${res.status}`, 'http_error', res.status);
}

export interface RecordErrorJson {
  index: number;
  record_id?: string | null;
  code: string;
  message: string;
  path: string;
}

export interface UploadResult {
  datasetId: string | null;
  recordCount: number;
  rejectedRecords: number;
  recordErrors: RecordErrorJson[];
  /** Set when the upload was refused as a whole. */
  error: ApiError | null;
}

/**
 * Uploads a .jsonl, .csv or .txt file as a dataset (REST multipart
 * POST /v1/datasets: GraphQL takes records as JSON, not files). Rejected
 * records come back with their codes, also when every record was rejected.
 */
export async function uploadDatasetFile(file: File, name: string, type: 'eval_set' | 'rag_corpus'): Promise<UploadResult> {
  const form = new FormData();
  form.set('name', name);
  form.set('type', type);
  form.set('file', file, file.name);
  const res = await fetch('/v1/datasets', { method: 'POST', headers: authHeaders(), body: form });
  if (res.status === 401) refused('The server refused the key.');
  if (res.status === 201) {
    const body = (await res.json()) as { dataset_id: string; record_count: number; rejected_records?: number; record_errors?: RecordErrorJson[] };
    return {
      datasetId: body.dataset_id,
      recordCount: body.record_count,
      rejectedRecords: body.rejected_records ?? 0,
      recordErrors: body.record_errors ?? [],
      error: null,
    };
  }
  const err = await restError(res);
  const details = (err.details ?? {}) as { rejected_records?: number; record_errors?: RecordErrorJson[] };
  return { datasetId: null, recordCount: 0, rejectedRecords: details.rejected_records ?? 0, recordErrors: details.record_errors ?? [], error: err };
}

/** A REST download read with the key header (GET), as text. */
export async function fetchText(path: string, signal?: AbortSignal): Promise<string> {
  const res = await fetch(path, { headers: authHeaders(), ...(signal ? { signal } : {}) });
  if (res.status === 401) refused('The server refused the key.');
  if (!res.ok) throw await restError(res);
  return res.text();
}

/**
 * Downloads a REST file with the key in a header and saves it through a
 * Blob URL: the key never appears in a link the browser could keep.
 */
export async function downloadFile(path: string, filename: string): Promise<void> {
  const res = await fetch(path, { headers: authHeaders() });
  if (res.status === 401) refused('The server refused the key.');
  if (!res.ok) throw await restError(res);
  const url = URL.createObjectURL(await res.blob());
  try {
    const a = document.createElement('a');
    a.href = url;
    a.download = filename;
    document.body.append(a);
    a.click();
    a.remove();
  } finally {
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}
