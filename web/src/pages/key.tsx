import { useState } from 'preact/hooks';
import { ApiError, forgetKey, request, saveKey } from '../api.ts';
import { graphql } from '../graphql.ts';
import { errorText } from '../ui.tsx';

const CheckKey = graphql(`
  query CheckKey {
    health {
      status
    }
  }
`);

/** The key form: the key is checked with one query, then kept in sessionStorage for this tab. */
export function KeyForm({ notice, onSaved }: { notice: string | null; onSaved: () => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    const k = key.trim();
    if (!k) return setError('Enter a key.');
    setBusy(true);
    setError(null);
    saveKey(k);
    try {
      await request(CheckKey, {});
      onSaved();
    } catch (err) {
      forgetKey();
      setError(err instanceof ApiError && err.code === 'unauthorized' ? 'The server refused this key.' : errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="key-form">
      <h1 tabIndex={-1}>Sign in with an API key</h1>
      <p>
        The console calls the server's GraphQL API with your key in the <code>x-api-key</code> header. The key stays in this
        tab's session storage until the tab closes (or <em>Forget key</em>); it is never put in a URL.
      </p>
      {notice && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={submit}>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autocomplete="off"
          spellcheck={false}
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
          aria-invalid={error ? 'true' : undefined}
          aria-describedby={error ? 'api-key-error' : undefined}
          required
        />
        {error && (
          <small id="api-key-error" class="error" role="alert">
            {error}
          </small>
        )}
        <button type="submit" aria-busy={busy ? 'true' : undefined} disabled={busy}>
          Use this key
        </button>
      </form>
    </section>
  );
}
