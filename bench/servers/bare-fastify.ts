/**
 * Baseline for the pipeline benchmark: the same GET on a bare Fastify route, no security at all.
 * BENCH_BARE_SPIN_US=<µs> adds that much busy work to every request (a calibration experiment: how
 * the machine treats a server exactly that much slower; see the README's benchmark section).
 */
import Fastify from 'fastify';

const SPIN_MS = Number(process.env.BENCH_BARE_SPIN_US ?? 0) / 1000;

const app = Fastify({ logger: false });
app.get('/api/v1/account', async (_request, reply) => {
  if (SPIN_MS > 0) {
    const until = performance.now() + SPIN_MS;
    while (performance.now() < until);
  }
  reply.header('Cache-Control', 'no-store');
  return { id: 'acc_01JBENCH00000000000000000', wallet: '0x00000000000000000000000000000000000000b0', chain: 'ethereum', role: 'trader', createdAt: 1764345600000 };
});
const url = await app.listen({ host: '127.0.0.1', port: Number(process.env.BENCH_PORT ?? 0) });
console.log(`listening ${url}`);

// A clean exit on SIGTERM, so that a CPU profile (BENCH_PIPELINE_PROFILE) is written.
process.once('SIGTERM', () => process.exit(0));
