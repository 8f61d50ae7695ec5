import { isIP } from 'node:net';

/** `::ffff:1.2.3.4` → `1.2.3.4`, lowercased IPv6; so allowlists and blocks match one spelling. */
export function normalizeIp(ip: string): string {
  const lower = ip.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (mapped && isIP(mapped[1]!) === 4) return mapped[1]!;
  return lower;
}
