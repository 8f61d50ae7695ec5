import { canonicalAddress, clientGroup } from './ip.js';

/**
 * Open connections per client address (per /64 on IPv6, as the guard counts), in one process.
 * The rate limits and the failure counter only see requests: a client that opens connections and
 * trickles its headers (slowloris) holds each one until the headers deadline without ever making
 * one, and an IP block applies only once a request's headers are complete. Past `limit` open
 * connections from one group, a new one is refused at once. Exempt addresses (loopback by
 * default, the trusted proxies, whose connections carry every client behind them) are not counted.
 * Pure: the HTTP layer reports each connection as it opens and closes.
 */
export class ConnectionCounter {
  private readonly open = new Map<string, number>();

  constructor(
    private readonly limit: number,
    private readonly isExempt: (address: string) => boolean,
  ) {}

  /**
   * A connection from `remoteAddress` opened: the group it counts against, or null when it is not
   * counted (exempt, or no readable address); `refused` when the group already holds `limit`.
   */
  opened(remoteAddress: string | undefined): { group: string | null; refused: boolean } {
    const address = remoteAddress === undefined ? undefined : canonicalAddress(remoteAddress);
    if (address === undefined || this.isExempt(address)) return { group: null, refused: false };
    const group = clientGroup(address);
    const n = this.open.get(group) ?? 0;
    if (n >= this.limit) return { group, refused: true };
    this.open.set(group, n + 1);
    return { group, refused: false };
  }

  /** A counted connection (not a refused one) closed. */
  closed(group: string): void {
    const n = this.open.get(group);
    if (n === undefined) return;
    if (n <= 1) this.open.delete(group);
    else this.open.set(group, n - 1);
  }

  /** Connections open from the group (for tests and metrics). */
  count(group: string): number {
    return this.open.get(group) ?? 0;
  }

  /** Groups with a connection open: the map never holds a group with none. */
  get groups(): number {
    return this.open.size;
  }
}
