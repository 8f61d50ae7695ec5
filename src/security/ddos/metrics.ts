import { Counter, type Registry } from 'prom-client';

/** DDoS-guard counters, registered on the server's registry. */
export class DdosMetrics {
  readonly blocksCreated: Counter<'source' | 'reason'>;
  readonly blockedRequests: Counter;
  readonly connectionsRefused: Counter;

  constructor(registry: Registry) {
    this.blocksCreated = new Counter({
      name: 'moondraft_ip_blocks_created_total',
      help: 'IP blocks created, by source (manual, auto) and reason',
      labelNames: ['source', 'reason'] as const,
      registers: [registry],
    });
    this.blockedRequests = new Counter({
      name: 'moondraft_ip_blocked_requests_total',
      help: 'Requests refused with ip_blocked before any other work',
      registers: [registry],
    });
    this.connectionsRefused = new Counter({
      name: 'moondraft_connections_refused_total',
      help: 'Connections refused on opening: their address already held MOONDRAFT_DDOS_CONNECTIONS_PER_IP open ones',
      registers: [registry],
    });
  }
}
