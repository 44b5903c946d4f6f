import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { createLimitedServer } from '../../src/http/server-limits.js';

const limits = { headersTimeoutMs: 5000, requestTimeoutMs: 10_000, keepAliveTimeoutMs: 1000, streamIdleTimeoutMs: 1500, maxConnections: 3 };

/**
 * A limited server whose one route streams 64 KB every 10 ms (a generation
 * that keeps producing whether or not the client reads), and a raw client
 * that has asked for it and paused. `opened`/`closed` are when the stream
 * began and ended (0 until then).
 */
async function streamNobodyReads() {
  const times = { opened: 0, closed: 0 };
  const server = createLimitedServer((_req, res) => {
    times.opened = Date.now();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const chunk = `data: ${'x'.repeat(64 * 1024)}\n\n`;
    const timer = setInterval(() => res.write(chunk), 10);
    res.on('close', () => {
      clearInterval(timer);
      times.closed = Date.now();
    });
  }, limits);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect(port, '127.0.0.1');
  client.on('error', () => {});
  client.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n');
  client.pause();
  return { server, client, times };
}

describe('server limits', () => {
  it('closes a stream whose client reads nothing once STREAM_IDLE_TIMEOUT_MS passes without progress', async () => {
    const { server, client, times } = await streamNobodyReads();
    const deadline = Date.now() + 20_000;
    while (times.closed === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    client.destroy();
    await new Promise((r) => server.close(r));
    expect(times.closed).toBeGreaterThan(0);
    // Not before the timeout (the socket's buffers fill first, then 1.5 s without progress, checked every second).
    expect(times.closed - times.opened).toBeGreaterThanOrEqual(1500);
  });

  it('a client that reads, however slowly, keeps its stream', async () => {
    const { server, client, times } = await streamNobodyReads();
    // Reads a little every 500 ms: slow, but never idle for the 1.5 s limit.
    const reader = setInterval(() => {
      client.resume();
      setTimeout(() => client.pause(), 20);
    }, 500);
    await new Promise((r) => setTimeout(r, 4500));
    clearInterval(reader);
    expect(times.closed).toBe(0);
    client.destroy();
    await new Promise((r) => server.close(r));
  });

  it('MAX_CONNECTIONS: connections past the cap are closed as they arrive', async () => {
    const server = createLimitedServer((_req, res) => res.end('ok'), limits);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    const open = await Promise.all(Array.from({ length: 3 }, () => new Promise<net.Socket>((r) => {
      const s = net.connect(port, '127.0.0.1', () => r(s));
      s.on('error', () => {});
    })));
    await new Promise((r) => setTimeout(r, 100));
    const extra = net.connect(port, '127.0.0.1');
    extra.on('error', () => {});
    const closed = await new Promise<boolean>((r) => {
      extra.on('close', () => r(true));
      setTimeout(() => r(false), 3000);
    });
    expect(closed).toBe(true);
    for (const s of open) s.destroy();
    await new Promise((r) => server.close(r));
  });
});
