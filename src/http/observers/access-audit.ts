import { accessEvent } from '../../audit/access.js';
import type { AuditEvent } from '../../audit/events.js';
import type { Clock } from '../../lib/clock.js';
import { refusedByBlock } from '../stages/ip-block.js';
import type { ResponseObserver } from './types.js';

/**
 * Hands each API request's access event to the audit log's buffer (see audit/access.ts), except
 * for the refusals a flood is made of, which are decided without any work and must cost none: a
 * request from a blocked address (the block is in the trail, the refusals in the
 * blocked-requests metric) and an anonymous request over its ceiling (429; the suspension it
 * earns is in the trail). Each would otherwise be a stored record kept for the whole retention
 * period, at whatever rate the sender can reach: an address already refused could fill the disk.
 */
export function accessAuditObserver(audit: { enqueue(event: AuditEvent): void }, clock: Clock): ResponseObserver {
  return {
    name: 'accessAudit',
    observe(request, reply) {
      if (reply.statusCode === 429 ? request.principal?.kind === 'anonymous' : reply.statusCode === 403 && refusedByBlock(request)) return;
      const event = accessEvent(request, reply, clock.now());
      if (event) audit.enqueue(event);
    },
  };
}
