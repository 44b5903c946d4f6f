import { createServer, type RequestListener, type Server } from 'node:http';
import type { Socket } from 'node:net';

/** Slow and idle clients (HTTP_*_TIMEOUT_MS, STREAM_IDLE_TIMEOUT_MS, MAX_CONNECTIONS). */
export interface HttpLimits {
  /** Time to receive a request's headers (Node's headersTimeout): a client sending them a byte a second is cut off. */
  headersTimeoutMs: number;
  /** Time to receive a whole request, body included (Node's requestTimeout): 408 and the connection closes. */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open between requests. */
  keepAliveTimeoutMs: number;
  /** How long a response may sit with bytes queued that the client does not read (a stream nobody reads) before its connection is closed. */
  streamIdleTimeoutMs: number;
  /** Open connections at most; more are closed as they arrive (Node's maxConnections). */
  maxConnections: number;
}

/** How often connections with unread output are looked at. */
const SWEEP_MS = 1000;

/**
 * An HTTP server for `app` with the limits applied. Node checks its
 * header and request timeouts every `connectionsCheckingInterval` (30 s by
 * default, set only at creation): here every second, so a slow client is
 * cut off close to its deadline.
 */
export function createLimitedServer(app: RequestListener, limits: HttpLimits): Server {
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    },
    app,
  );
  applyServerLimits(server, limits);
  return server;
}

/**
 * Applies the limits to a server. Node's own timeouts cover slow
 * requests; a response the client stops reading is found by one sweep over
 * the open connections: output queued in the process and not shrinking for
 * `streamIdleTimeoutMs` closes the connection (the request's signal aborts,
 * so a generation behind a stream stops). Returns a function that stops the sweep.
 */
export function applyServerLimits(server: Server, limits: HttpLimits): () => void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;

  const stuck = new Map<Socket, { since: number; queued: number }>();
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      stuck.delete(socket);
    });
  });
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const socket of sockets) {
      const queued = socket.writableLength;
      const seen = stuck.get(socket);
      if (queued === 0) {
        if (seen) stuck.delete(socket);
      } else if (!seen || queued < seen.queued) {
        // New output waiting, or the client read some since: the clock starts (again).
        stuck.set(socket, { since: now, queued });
      } else if (now - seen.since >= limits.streamIdleTimeoutMs) {
        stuck.delete(socket);
        socket.destroy();
      } else {
        seen.queued = queued;
      }
    }
  }, SWEEP_MS);
  sweep.unref();
  return () => clearInterval(sweep);
}
