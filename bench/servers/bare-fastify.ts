/** Baseline for the pipeline benchmark: the same GET on a bare Fastify route, no security at all. */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/api/v1/account', async (_request, reply) => {
  reply.header('Cache-Control', 'no-store');
  return { id: 'acc_bench', wallet: '0x0', chain: 'ethereum', role: 'trader', createdAt: 0 };
});
const url = await app.listen({ host: '127.0.0.1', port: Number(process.env.BENCH_PORT ?? 0) });
console.log(`listening ${url}`);
