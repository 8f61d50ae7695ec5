import http from 'node:http';
import https from 'node:https';
import { normalizePins, pinnedIdentityCheck } from './pinning.js';
import { ResponseInterrupted, type ReceivedHead, type Transport, type TransportRequest, type TransportResponse } from './types.js';

export interface TlsOptions {
  /**
   * SPKI SHA-256 pins (base64). The connection is refused unless a certificate of the server's chain
   * has one of these public keys. Give at least two (the current key and the next one) to rotate safely.
   */
  pins?: readonly string[];
  /**
   * Trust anchors (PEM), e.g. a private CA or a sandbox server's self-signed certificate. They replace
   * the system's root certificates for this client (Node's `ca`): to trust a public CA as well, include it.
   */
  ca?: string | Buffer | Array<string | Buffer>;
}

/**
 * node:http / node:https transport, used when TLS options are set: the platform fetch offers no hook
 * into certificate verification, node:https does (`checkServerIdentity` on the agent). Keep-alive
 * connections are pooled; TLS session resumption is off so that every new connection runs the pin check
 * on a full handshake.
 */
export function nodeTransport(tls: TlsOptions = {}): Transport {
  const pins = tls.pins ? normalizePins(tls.pins) : undefined;
  const httpAgent = new http.Agent({ keepAlive: true });
  const httpsAgent = new https.Agent({
    keepAlive: true,
    maxCachedSessions: 0,
    minVersion: 'TLSv1.2',
    // Always verify, whatever NODE_TLS_REJECT_UNAUTHORIZED says: a failed pin check (or chain) must
    // end the connection, and Node only treats checkServerIdentity's error as fatal when this is set.
    rejectUnauthorized: true,
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
    ...(pins ? { checkServerIdentity: pinnedIdentityCheck(pins) } : {}),
  });

  return {
    send(request: TransportRequest): Promise<TransportResponse> {
      const { url } = request;
      const secure = url.protocol === 'https:';
      if (!secure && pins) return Promise.reject(new TypeError('certificate pins are set but the URL is not https'));
      const module = secure ? https : http;
      return new Promise<TransportResponse>((resolve, reject) => {
        // Set once the status and headers arrived: a later failure names them (ResponseInterrupted).
        let head: ReceivedHead | undefined;
        const fail = (cause: unknown) => reject(head ? new ResponseInterrupted(head, cause) : cause);
        const req = module.request(
          {
            protocol: url.protocol,
            hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
            port: url.port || (secure ? 443 : 80),
            // Exactly the signed request target.
            path: url.pathname + url.search,
            method: request.method,
            headers: request.body ? { ...request.headers, 'Content-Length': String(request.body.length) } : request.headers,
            agent: secure ? httpsAgent : httpAgent,
            signal: request.signal,
          },
          (res) => {
            const headers = res.headers;
            const received: ReceivedHead = {
              status: res.statusCode ?? 0,
              headers: {
                get(name) {
                  const v = headers[name.toLowerCase()];
                  return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
                },
              },
            };
            head = received;
            const answer = (body: string, tooLarge: boolean): TransportResponse => ({ ...received, body, ...(tooLarge ? { tooLarge } : {}) });
            const max = request.maxResponseBytes;
            // Past the limit: answered without the body, and the connection closed so the rest never comes.
            const refuse = () => {
              resolve(answer('', true));
              res.destroy();
            };
            if (max !== undefined && Number(headers['content-length'] ?? NaN) > max) return refuse();
            const chunks: Buffer[] = [];
            let size = 0;
            res.on('data', (chunk: Buffer) => {
              size += chunk.length;
              if (max !== undefined && size > max) return refuse();
              chunks.push(chunk);
            });
            res.on('error', fail);
            // A connection lost mid-body ends in 'close' without 'end' (a promise settles only once).
            res.on('close', () => {
              if (!res.complete) fail(new Error('the response was cut off'));
            });
            res.on('end', () => resolve(answer(Buffer.concat(chunks).toString('utf8'), false)));
          },
        );
        req.on('error', fail);
        req.end(request.body ? Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength) : undefined);
      });
    },
    close() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
