import { RedisState } from '/work/wt/ratelimit/src/state/redis.ts';
const s = new RedisState({ url: 'redis://127.0.0.1:6379', prefix: 'bb:' });
await s.whenReady();
let i = 0; const end = performance.now() + 2000;
const mode = process.argv[2];
await Promise.all(Array.from({ length: 256 }, async () => { while (performance.now() < end) { const k = `k${i++ % 10000}`; if (mode === 'sw') await s.slidingWindowHit(k, 100, 1000, undefined, { holdKeys: [k + ':s', k + ':h'] }); else await s.incr(k + 'fw', 1, 2000); } }));
console.log(mode, Math.round(i / 2), '/s');
await s.close();
