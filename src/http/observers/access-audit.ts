import { accessEvent, audited } from '../../audit/access.js';
import { anonymizeIp } from '../../audit/anonymize.js';
import type { AuditEvent } from '../../audit/events.js';
import type { FloodRefusal } from '../../audit/refusals.js';
import type { Clock } from '../../lib/clock.js';
import { refusedByBlock } from '../stages/ip-block.js';
import type { ResponseObserver } from './types.js';

/**
 * Hands each API request's access event to the audit log's buffer (see audit/access.ts). The
 * refusals a flood is made of, decided without any work, are counted instead, per client network
 * (see audit/refusals.ts): a request from a blocked address and an anonymous request over its
 * ceiling (429). One stored entry each, kept for the whole retention period, would let an address
 * already refused write to the audit trail at whatever rate it can send; counted, every such
 * request is still in the trail (one `access.refused` record per network and minute).
 */
export function accessAuditObserver(audit: { enqueue(event: AuditEvent): void; tallyRefusal(network: string | null, refusal: FloodRefusal): void }, clock: Clock): ResponseObserver {
  return {
    name: 'accessAudit',
    observe(request, reply) {
      const status = reply.statusCode;
      if (status === 429 ? request.principal?.kind === 'anonymous' : status === 403 && refusedByBlock(request)) {
        // Only API requests are in the trail (probes and documentation are not), counted or not.
        if (audited(request.routeOptions.url)) audit.tallyRefusal(anonymizeIp(request.clientIp || request.ip), status === 429 ? 'rate_limited' : 'ip_blocked');
        return;
      }
      const event = accessEvent(request, reply, clock.now());
      if (event) audit.enqueue(event);
    },
  };
}
