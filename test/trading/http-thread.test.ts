/**
 * The whole HTTP trading suite (http.test.ts) again, with order transactions on the order thread
 * as `serve` runs them (a SQLite file, MOONDRAFT_ORDER_THREAD on) instead of the server thread.
 */
process.env.MOONDRAFT_TEST_ORDER_THREAD = 'on';
await import('./http.test.js');
