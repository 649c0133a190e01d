/**
 * `--serve`: the live web view. A loopback HTTP server with the self-verifying timeline page
 * of @tibet/cbom in live mode, and a server-sent-events stream (`/events`) on which every new
 * event of the audit log is pushed as it lands (`event: node`), together with the narration
 * (`event: narrate`). The page verifies each pushed event itself (signature, inclusion,
 * checkpoint) — the server is not trusted for that.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { CausalGraph, GraphNode } from '@tibet/cbom';
import { liveEvent, renderHtml, type LiveEvent } from '@tibet/cbom';

export interface LiveView {
  url: string;
  /** Push the nodes of `graph` not sent yet (and the graph's newer checkpoint). */
  update(graph: CausalGraph): void;
  narrate(kind: 'act' | 'say', text: string): void;
  close(): Promise<void>;
  /** Resolves true when a page has connected to the event stream, false after `ms`. */
  viewer(ms: number): Promise<boolean>;
  /** How many nodes have been pushed. */
  readonly sent: number;
}

export async function startLiveView(
  initial: CausalGraph,
  o: { port?: number; title?: string } = {},
): Promise<LiveView> {
  const clients = new Set<ServerResponse>();
  let connected: () => void = () => undefined;
  const firstViewer = new Promise<void>((resolve) => (connected = resolve));
  const sentIds = new Set<string>(initial.nodes.map((n) => n.action_id));
  const backlog: string[] = [];
  const page = renderHtml(initial, { title: o.title ?? 'TIBET live timeline', liveUrl: '/events' });

  const send = (msg: string): void => {
    backlog.push(msg);
    for (const c of clients) c.write(msg);
  };
  const broadcast = (e: LiveEvent): void => send(liveEvent(e));

  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        // the page is self-contained: forbid every network fetch except its own event stream
        'content-security-policy':
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'",
      });
      res.end(page);
      return;
    }
    if (path === '/events') {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      res.write(': tibet live view\n\n');
      for (const m of backlog) res.write(m);
      clients.add(res);
      connected();
      req.on('close', () => clients.delete(res));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
  });
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : 0;
  const heartbeat = setInterval(() => {
    for (const c of clients) c.write(': keep-alive\n\n');
  }, 15_000);
  heartbeat.unref();

  return {
    url: `http://127.0.0.1:${port}/`,
    get sent() {
      return sentIds.size;
    },
    update(graph: CausalGraph): void {
      const fresh: GraphNode[] = graph.nodes.filter((n) => !sentIds.has(n.action_id));
      if (!fresh.length) return;
      // the proofs of new nodes are against the newest checkpoint: send it first
      if (graph.log) broadcast({ kind: 'log', value: graph.log });
      for (const a of graph.actors) broadcast({ kind: 'actor', value: a });
      for (const n of fresh) {
        sentIds.add(n.action_id);
        broadcast({ kind: 'node', value: n });
      }
    },
    viewer(ms: number): Promise<boolean> {
      return new Promise((resolve) => {
        const t = setTimeout(() => resolve(false), ms);
        void firstViewer.then(() => {
          clearTimeout(t);
          resolve(true);
        });
      });
    },
    narrate(kind, text): void {
      // the page ignores event types it does not know; other viewers may show the narration
      send(`event: narrate\ndata: ${JSON.stringify({ kind, text })}\n\n`);
    },
    close(): Promise<void> {
      clearInterval(heartbeat);
      for (const c of clients) c.end();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
