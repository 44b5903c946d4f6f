import { useState } from 'preact/hooks';
import { ApiError, request, uploadDatasetFile, type RecordErrorJson, type UploadResult } from '../api.ts';
import { graphql, type ResultOf } from '../graphql.ts';
import { Badge, ErrorNote, Facts, href, Scroll, useLoad, when } from '../ui.tsx';

const DatasetsQuery = graphql(`
  query Datasets($first: Int, $after: String, $type: DatasetType) {
    datasets(first: $first, after: $after, type: $type) {
      nodes {
        datasetId
        name
        type
        status
        recordCount
        createdAt
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const CreateDataset = graphql(`
  mutation CreateDataset($input: CreateDatasetInput!) {
    createDataset(input: $input) {
      dataset {
        datasetId
        recordCount
      }
      indexId
      rejectedRecords
      recordErrors {
        index
        recordId
        code
        message
        path
      }
    }
  }
`);

const DatasetQuery = graphql(`
  query Dataset($id: String!, $first: Int, $after: String) {
    dataset(id: $id) {
      datasetId
      name
      type
      status
      recordCount
      metadata
      error
      createdAt
      updatedAt
      records(first: $first, after: $after) {
        nodes {
          index
          recordId
          data
        }
        pageInfo {
          hasNextPage
          endCursor
        }
      }
    }
  }
`);

const PAGE = 10;

/**
 * Forward pages with a way back: the cursors of the pages seen so far.
 * `cursors[i]` is the `after` of page i (undefined for the first).
 */
function usePager() {
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined]);
  const page = cursors.length - 1;
  return {
    page,
    after: cursors[page],
    next: (endCursor: string | null | undefined) => endCursor && setCursors((c) => [...c, endCursor]),
    back: () => setCursors((c) => (c.length > 1 ? c.slice(0, -1) : c)),
    reset: () => setCursors([undefined]),
  };
}

function Pager(props: { label: string; page: number; hasNext: boolean; onBack: () => void; onNext: () => void }) {
  return (
    <nav class="pager" aria-label={props.label}>
      <button type="button" class="secondary outline small" disabled={props.page === 0} onClick={props.onBack}>
        Previous page
      </button>
      <span>Page {props.page + 1}</span>
      <button type="button" class="secondary outline small" disabled={!props.hasNext} onClick={props.onNext}>
        Next page
      </button>
    </nav>
  );
}

/** A .json file's records: an array, or an object with a `records` array. */
function jsonRecords(text: string): unknown[] {
  const parsed = JSON.parse(text) as unknown;
  if (Array.isArray(parsed)) return parsed;
  if (parsed && typeof parsed === 'object' && Array.isArray((parsed as { records?: unknown }).records)) return (parsed as { records: unknown[] }).records;
  throw new Error('A .json file must hold an array of records, or an object with a "records" array');
}

function RejectedTable({ errors, total }: { errors: RecordErrorJson[]; total: number }) {
  return (
    <>
      <h3>
        Rejected records: {total}
        {errors.length < total ? ` (the first ${errors.length} shown)` : ''}
      </h3>
      <Scroll label={'Rejected records'}>
        <table id="rejected-records" class="striped">
          <thead>
            <tr>
              <th scope="col">Record #</th>
              <th scope="col">Record id</th>
              <th scope="col">Code</th>
              <th scope="col">Where</th>
              <th scope="col">Problem</th>
            </tr>
          </thead>
          <tbody>
            {errors.map((e) => (
              <tr key={`${e.index}-${e.code}-${e.path}`} data-index={e.index}>
                <td>{e.index}</td>
                <td>{e.record_id ?? '–'}</td>
                <td>
                  <code>{e.code}</code>
                </td>
                <td>{e.path || 'whole record'}</td>
                <td>{e.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Scroll>
    </>
  );
}

function Upload({ onUploaded }: { onUploaded: () => void }) {
  const [name, setName] = useState('');
  const [type, setType] = useState<'eval_set' | 'rag_corpus'>('eval_set');
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<UploadResult | null>(null);
  const [error, setError] = useState<unknown>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!file) return;
    setBusy(true);
    setError(null);
    setResult(null);
    const dsName = name.trim() || file.name.replace(/\.[^.]+$/, '');
    try {
      if (/\.json$/i.test(file.name)) {
        // JSON goes through GraphQL (records as JSON); the other formats are files for REST to parse.
        const records = jsonRecords(await file.text());
        try {
          const { createDataset: c } = await request(CreateDataset, { input: { name: dsName, type: type === 'eval_set' ? 'EVAL_SET' : 'RAG_CORPUS', records } });
          setResult({
            datasetId: c.dataset.datasetId,
            recordCount: c.dataset.recordCount,
            rejectedRecords: c.rejectedRecords,
            recordErrors: c.recordErrors.map((r) => ({ index: r.index, record_id: r.recordId, code: r.code, message: r.message, path: r.path })),
            error: null,
          });
        } catch (err) {
          const details = err instanceof ApiError ? ((err.details ?? {}) as { rejected_records?: number; record_errors?: RecordErrorJson[] }) : {};
          if (!details.record_errors) throw err;
          setResult({ datasetId: null, recordCount: 0, rejectedRecords: details.rejected_records ?? 0, recordErrors: details.record_errors, error: err as ApiError });
        }
      } else {
        setResult(await uploadDatasetFile(file, dsName, type));
      }
      onUploaded();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <article>
      <header>
        <h2>Upload a dataset</h2>
      </header>
      <form onSubmit={submit} id="upload-form">
        <div class="grid-auto">
          <label>
            Name
            <input id="upload-name" name="name" type="text" maxLength={200} value={name} placeholder="the file's name" onInput={(e) => setName(e.currentTarget.value)} />
          </label>
          <label>
            Type
            <select id="upload-type" name="type" value={type} onChange={(e) => setType(e.currentTarget.value as typeof type)}>
              <option value="eval_set">evaluation set</option>
              <option value="rag_corpus">RAG corpus</option>
            </select>
          </label>
        </div>
        <label>
          File (.json, .jsonl, .csv or .txt)
          <input
            id="upload-file"
            name="file"
            type="file"
            accept=".json,.jsonl,.ndjson,.csv,.txt,application/json,text/csv,text/plain"
            required
            onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)}
          />
        </label>
        <button type="submit" aria-busy={busy ? 'true' : undefined} disabled={busy || !file}>
          Upload
        </button>
      </form>
      <ErrorNote error={error} />
      <div id="upload-result" role="status">
        {result && (
          <>
            {result.error ? (
              <p class="error">Nothing was stored: {result.error.message}</p>
            ) : (
              <p>
                Stored <a href={href('datasets', result.datasetId!)}>{result.datasetId}</a> with {result.recordCount} records
                {result.rejectedRecords > 0 ? `; ${result.rejectedRecords} rejected` : ''}.
              </p>
            )}
            {result.rejectedRecords > 0 && <RejectedTable errors={result.recordErrors} total={result.rejectedRecords} />}
          </>
        )}
      </div>
    </article>
  );
}

export function Datasets() {
  const pager = usePager();
  const [type, setType] = useState<'' | 'EVAL_SET' | 'RAG_CORPUS'>('');
  const [data, error, reload] = useLoad(
    (signal) => request(DatasetsQuery, { first: PAGE, after: pager.after ?? null, type: type || null }, signal),
    [pager.after, type],
  );
  const list = data?.datasets;
  return (
    <section>
      <h1 tabIndex={-1}>Datasets</h1>
      <Upload onUploaded={() => (pager.page === 0 ? reload() : pager.reset())} />
      <h2>All datasets</h2>
      <div class="toolbar">
        <label>
          Type
          <select
            id="datasets-type"
            value={type}
            onChange={(e) => {
              setType(e.currentTarget.value as typeof type);
              pager.reset();
            }}
          >
            <option value="">all</option>
            <option value="EVAL_SET">evaluation sets</option>
            <option value="RAG_CORPUS">RAG corpora</option>
          </select>
        </label>
      </div>
      <ErrorNote error={error} />
      <Scroll label={'Datasets'}>
        <table id="datasets-table" class="striped" aria-busy={!data ? 'true' : 'false'}>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Id</th>
              <th scope="col">Type</th>
              <th scope="col">Status</th>
              <th scope="col">Records</th>
              <th scope="col">Uploaded</th>
            </tr>
          </thead>
          <tbody>
            {list?.nodes.map((d) => (
              <tr key={d.datasetId}>
                <td>
                  <a href={href('datasets', d.datasetId)}>{d.name}</a>
                </td>
                <td>
                  <code>{d.datasetId}</code>
                </td>
                <td>{d.type === 'EVAL_SET' ? 'evaluation set' : 'RAG corpus'}</td>
                <td>
                  <Badge value={d.status} />
                </td>
                <td>{d.recordCount}</td>
                <td>{when(d.createdAt)}</td>
              </tr>
            ))}
            {list && list.nodes.length === 0 && (
              <tr>
                <td colSpan={6}>No datasets yet.</td>
              </tr>
            )}
          </tbody>
        </table>
      </Scroll>
      <Pager label="Dataset pages" page={pager.page} hasNext={list?.pageInfo.hasNextPage ?? false} onBack={pager.back} onNext={() => pager.next(list?.pageInfo.endCursor)} />
    </section>
  );
}

type DatasetData = ResultOf<typeof DatasetQuery>['dataset'];

/** A record's main text: the prompt of an eval record, the text of a corpus document. */
function preview(data: unknown): { main: string; reference: string } {
  const d = (data ?? {}) as { input?: { prompt?: string }; text?: string; reference?: { answer?: string } | string };
  const reference = typeof d.reference === 'string' ? d.reference : (d.reference?.answer ?? '');
  return { main: d.input?.prompt ?? d.text ?? '', reference };
}

export function DatasetPage({ id }: { id: string }) {
  const pager = usePager();
  const [data, error] = useLoad((signal) => request(DatasetQuery, { id, first: 20, after: pager.after ?? null }, signal), [id, pager.after]);
  const d: DatasetData | undefined = data?.dataset;
  return (
    <section>
      <p>
        <a href={href('datasets')}>← Datasets</a>
      </p>
      <h1 tabIndex={-1}>{d ? d.name : 'Dataset'}</h1>
      <ErrorNote error={error} />
      {d && (
        <>
          <Facts
            items={[
              ['Id', <code>{d.datasetId}</code>],
              ['Type', d.type === 'EVAL_SET' ? 'evaluation set' : 'RAG corpus'],
              ['Status', <Badge value={d.status} />],
              ['Records', String(d.recordCount)],
              ['Uploaded', when(d.createdAt)],
              ...(d.error ? ([['Error', d.error]] as Array<[string, string]>) : []),
              ...(d.metadata && Object.keys(d.metadata as object).length ? ([['Metadata', <code>{JSON.stringify(d.metadata)}</code>]] as Array<[string, preact.JSX.Element]>) : []),
            ]}
          />
          {d.type === 'EVAL_SET' && (
            <p>
              <a href={href('evals', 'new', d.datasetId)} role="button" class="secondary">
                Evaluate the model on it
              </a>
            </p>
          )}
          <h2>Records</h2>
          <Scroll label={'Records'}>
            <table id="records-table" class="striped">
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">{d.type === 'EVAL_SET' ? 'Record id' : 'Document id'}</th>
                  <th scope="col">{d.type === 'EVAL_SET' ? 'Prompt' : 'Text'}</th>
                  {d.type === 'EVAL_SET' && <th scope="col">Reference</th>}
                  <th scope="col">Record</th>
                </tr>
              </thead>
              <tbody>
                {d.records.nodes.map((r) => {
                  const p = preview(r.data);
                  return (
                    <tr key={r.index}>
                      <td>{r.index}</td>
                      <td>
                        <code>{r.recordId}</code>
                      </td>
                      <td class="clip">{p.main}</td>
                      {d.type === 'EVAL_SET' && <td class="clip">{p.reference || '–'}</td>}
                      <td>
                        <details>
                          <summary>JSON</summary>
                          <pre>{JSON.stringify(r.data, null, 2)}</pre>
                        </details>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </Scroll>
          <Pager label="Record pages" page={pager.page} hasNext={d.records.pageInfo.hasNextPage} onBack={pager.back} onNext={() => pager.next(d.records.pageInfo.endCursor)} />
        </>
      )}
    </section>
  );
}
