import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../config/index.js';

/** The rate-limit and DDoS-guard variables of src/config: defaults, overrides, one-line errors. */
describe('rate-limit and DDoS configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c.rateLimit).toEqual({
      penaltyBaseMs: 1000,
      penaltyMaxMs: 60_000,
      penaltyGraceMs: 250,
      strikeWindowMs: 60_000,
      suspendAfterStrikes: 10,
      abuseFactor: 10,
      suspensionMs: 300_000,
      signinPerIp: 10,
      publicPerIp: 50,
    });
    expect(c.ddos).toEqual({ authFailures: 20, authFailureWindowMs: 60_000, clientErrorsPerSec: 30, blockMs: 900_000, connectionsPerIp: 256, exempt: ['127.0.0.0/8', '::1'] });
  });

  it('reads overrides; trusted proxies are always exempt; "none" clears the exempt list', () => {
    const c = loadConfig({ MOONDRAFT_RL_SUSPENSION_SEC: '60', MOONDRAFT_DDOS_BLOCK_SEC: '30', MOONDRAFT_DDOS_EXEMPT: '10.0.0.0/8', MOONDRAFT_TRUSTED_PROXIES: '192.0.2.1' });
    expect(c.rateLimit.suspensionMs).toBe(60_000);
    expect(c.ddos.blockMs).toBe(30_000);
    expect(c.ddos.exempt).toEqual(['10.0.0.0/8', '192.0.2.1']);
    expect(loadConfig({ MOONDRAFT_DDOS_EXEMPT: 'none' }).ddos.exempt).toEqual([]);
  });

  it.each([
    [{ MOONDRAFT_RL_SUSPENSION_SEC: '0' }, 'MOONDRAFT_RL_SUSPENSION_SEC'],
    [{ MOONDRAFT_RL_PENALTY_BASE_MS: 'fast' }, 'MOONDRAFT_RL_PENALTY_BASE_MS'],
    [{ MOONDRAFT_RL_PENALTY_BASE_MS: '5000', MOONDRAFT_RL_PENALTY_MAX_MS: '1000' }, 'MOONDRAFT_RL_PENALTY_MAX_MS'],
    [{ MOONDRAFT_DDOS_EXEMPT: '10.0.0.0/8,localhost' }, 'MOONDRAFT_DDOS_EXEMPT'],
    [{ MOONDRAFT_DDOS_AUTH_FAILURES: '-1' }, 'MOONDRAFT_DDOS_AUTH_FAILURES'],
    // Exempting the whole Internet turns automatic blocking and the per-address ceilings off.
    [{ MOONDRAFT_DDOS_EXEMPT: '0.0.0.0/0' }, 'MOONDRAFT_DDOS_EXEMPT'],
    [{ MOONDRAFT_DDOS_EXEMPT: '127.0.0.1,::/0' }, 'MOONDRAFT_DDOS_EXEMPT'],
    [{ MOONDRAFT_DDOS_EXEMPT: '::ffff:0:0/96' }, 'MOONDRAFT_DDOS_EXEMPT'],
  ])('refuses %o naming %s', (env, variable) => {
    let error: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as Error).message).not.toContain('\n');
  });
});
