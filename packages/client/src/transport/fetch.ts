import { ResponseInterrupted, type Transport, type TransportRequest, type TransportResponse } from './types.js';

/**
 * The default transport: the platform's `fetch`. The request target comes from a URL the request
 * layer already normalised, so fetch sends exactly the path that was signed. Redirects are not
 * followed: a signed request re-sent to another target would fail its signature (or leak it).
 */
export function fetchTransport(fetchImpl: typeof fetch = globalThis.fetch): Transport {
  if (typeof fetchImpl !== 'function') throw new TypeError('no fetch implementation: use Node 20+ or pass one');
  return {
    async send(request: TransportRequest): Promise<TransportResponse> {
      const response = await fetchImpl(request.url, {
        method: request.method,
        headers: request.headers,
        body: request.body,
        signal: request.signal,
        redirect: 'manual',
      });
      let read: { body: string; tooLarge: boolean };
      try {
        read = await readBody(response, request.maxResponseBytes);
      } catch (cause) {
        // The status and headers came; the body was lost (a reset, the timeout): say what came.
        throw new ResponseInterrupted({ status: response.status, headers: response.headers }, cause);
      }
      const { body, tooLarge } = read;
      return { status: response.status, headers: response.headers, body, ...(tooLarge ? { tooLarge } : {}) };
    },
    close() {},
  };
}

/** The body as UTF-8 text, read no further than `max` bytes (decoded, so a compressed body counts in full). */
async function readBody(response: Response, max: number | undefined): Promise<{ body: string; tooLarge: boolean }> {
  if (max === undefined) return { body: await response.text(), tooLarge: false };
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (!response.headers.get('content-encoding') && declared > max) {
    await response.body?.cancel().catch(() => undefined);
    return { body: '', tooLarge: true };
  }
  if (!response.body) return { body: '', tooLarge: false };
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      // Closes the connection: the rest is never downloaded.
      await reader.cancel().catch(() => undefined);
      return { body: '', tooLarge: true };
    }
    chunks.push(value);
  }
  // As Response.text(): UTF-8, a leading BOM dropped, malformed bytes replaced.
  return { body: new TextDecoder().decode(Buffer.concat(chunks)), tooLarge: false };
}
