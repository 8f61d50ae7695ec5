import { accessEvent } from '../../audit/access.js';
import type { AuditEvent } from '../../audit/events.js';
import type { Clock } from '../../lib/clock.js';
import type { ResponseObserver } from './types.js';

/** Hands each API request's access event to the audit log's buffer (see audit/access.ts). */
export function accessAuditObserver(audit: { enqueue(event: AuditEvent): void }, clock: Clock): ResponseObserver {
  return {
    name: 'accessAudit',
    observe(request, reply) {
      const event = accessEvent(request, reply, clock.now());
      if (event) audit.enqueue(event);
    },
  };
}
