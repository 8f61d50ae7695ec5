import type { Transport, TransportRequest, TransportResponse } from './types.js';

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
      const body = await response.text();
      return { status: response.status, headers: response.headers, body };
    },
    close() {},
  };
}
