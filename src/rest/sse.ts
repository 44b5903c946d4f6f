import type { Response } from 'express';

/** Server-sent events on an Express response. */
export class SseWriter {
  constructor(private readonly res: Response) {}

  /** Sends the headers; once (a second call is a no-op). */
  open(): void {
    if (this.res.headersSent) return;
    this.res.status(200);
    this.res.setHeader('content-type', 'text/event-stream; charset=utf-8');
    this.res.setHeader('cache-control', 'no-cache, no-transform');
    this.res.setHeader('connection', 'keep-alive');
    // Proxies such as nginx would otherwise buffer the stream.
    this.res.setHeader('x-accel-buffering', 'no');
    this.res.flushHeaders();
  }

  send(event: string, data: unknown): void {
    // A client that went away leaves a destroyed response: writing to it would only raise.
    if (this.res.writableEnded || this.res.destroyed) return;
    this.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  end(): void {
    if (!this.res.writableEnded) this.res.end();
  }
}

/** True when the response already is an open event stream (its status line and headers are out). */
export function isEventStream(res: Response): boolean {
  return res.headersSent && String(res.getHeader('content-type') ?? '').startsWith('text/event-stream');
}
