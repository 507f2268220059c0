// A local server for the zoo tests: /<route>/segmenter-tiny/<file> answers per route (see fixture.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendFile, serve } from '../data/synth.js';
import { runFiles } from './fixture.js';

/** Starts the server; `flaky` cuts its first response per file after `cutAt` bytes. */
export async function zooServer(cutAt = 1000): Promise<Awaited<ReturnType<typeof serve>> & { cutOnce: Set<string> }> {
  const files = runFiles();
  const cutOnce = new Set<string>(Object.keys(files));
  const s = await serve((req: IncomingMessage, res: ServerResponse) => {
    const m = /^\/([a-z]+)\/segmenter-tiny\/([\w.]+)$/.exec((req.url ?? '').split('?')[0]!);
    const data = m ? files[m[2]!] : undefined;
    if (!m || !data || m[1] === 'missing') return res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    const route = m[1]!;
    if (route === 'flaky' && cutOnce.delete(m[2]!)) return sendFile(req, res, data, { dropAfter: cutAt });
    if (route === 'cut') {
      // Content-Length announces the whole file, the connection ends after part of it, every time.
      res.writeHead(200, { 'content-length': data.length });
      res.write(data.subarray(0, cutAt), () => setTimeout(() => res.socket?.destroy(), 10));
      return;
    }
    if (route === 'short') return sendFile(req, res, data.subarray(0, data.length - 100));
    return sendFile(req, res, data);
  });
  return { ...s, cutOnce };
}
