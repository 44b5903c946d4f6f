/** One event of a streamed generation: a piece as it comes, or (last) the whole result. */
export interface StreamEvent<T, R> {
  token: T | null;
  result: R | null;
}

/**
 * Bridges a service's per-piece callback to the async iterator a GraphQL
 * subscription returns. The subscription ending early (client gone) aborts
 * the work through the signal `run` receives.
 */
export async function* streamEvents<T, R>(
  run: (onPiece: (piece: T) => void, signal: AbortSignal) => Promise<R>,
  parent: AbortSignal,
): AsyncGenerator<StreamEvent<T, R>> {
  const controller = new AbortController();
  const onParentAbort = () => controller.abort();
  parent.addEventListener('abort', onParentAbort, { once: true });
  const pending: Array<StreamEvent<T, R>> = [];
  let wake: (() => void) | undefined;
  let finished = false;
  let failure: unknown;
  const push = (e: StreamEvent<T, R>) => {
    pending.push(e);
    wake?.();
  };
  run((token) => push({ token, result: null }), controller.signal)
    .then((result) => push({ token: null, result }))
    .catch((err: unknown) => {
      failure = err;
    })
    .finally(() => {
      finished = true;
      wake?.();
    });
  try {
    for (;;) {
      const next = pending.shift();
      if (next) {
        yield next;
        if (next.result) return;
        continue;
      }
      if (finished) {
        if (failure !== undefined) throw failure;
        return;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    parent.removeEventListener('abort', onParentAbort);
    controller.abort();
  }
}
